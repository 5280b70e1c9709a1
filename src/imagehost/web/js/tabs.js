// Tabs as the WAI-ARIA pattern has them (arrows, Home, End), remembered in the URL fragment.
// Switching never reloads: the fragment is replaced with history.replaceState.

export class Tabs {
  /**
   * `tablist` holds role=tab buttons whose aria-controls name their panels; a tab's fragment
   * name is its id without the "tab-" prefix (#upload, #images).
   */
  constructor(tablist, onChange = () => {}) {
    this.tabs = [...tablist.querySelectorAll('[role="tab"]')];
    this.onChange = onChange;
    this.current = "";
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(this.nameOf(tab), { focus: false }));
      tab.addEventListener("keydown", (event) => this.onKey(event, tab));
    }
    window.addEventListener("hashchange", () => this.fromFragment());
  }

  nameOf(tab) {
    return tab.id.replace(/^tab-/, "");
  }

  /** Selects the tab named by the fragment (or the first one). */
  fromFragment() {
    const wanted = window.location.hash.replace(/^#/, "");
    const known = this.tabs.some((tab) => this.nameOf(tab) === wanted);
    this.select(known ? wanted : this.nameOf(this.tabs[0]), { focus: false, remember: known });
  }

  select(name, { focus = false, remember = true } = {}) {
    for (const tab of this.tabs) {
      const selected = this.nameOf(tab) === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
      if (selected && focus) tab.focus();
    }
    if (remember && window.location.hash !== `#${name}`) {
      window.history.replaceState(null, "", `#${name}`);
    }
    if (this.current !== name) {
      this.current = name;
      this.onChange(name);
    }
  }

  onKey(event, tab) {
    const index = this.tabs.indexOf(tab);
    let target = -1;
    if (event.key === "ArrowRight") target = (index + 1) % this.tabs.length;
    else if (event.key === "ArrowLeft") target = (index - 1 + this.tabs.length) % this.tabs.length;
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = this.tabs.length - 1;
    if (target < 0) return;
    event.preventDefault();
    this.select(this.nameOf(this.tabs[target]), { focus: true });
  }
}
