// The upload page: wires the tabs, the uploader, the Images tab and the ShareX download to the
// server's config, and keeps the expiry notes ("Expires in 5 min") current.

import { fetchConfig, fetchSharexFile } from "./api.js";
import { el, refreshExpiryNotes } from "./dom.js";
import { Gallery } from "./gallery.js";
import { adminKey, adoptKeyFromFragment, setAdminKey } from "./storage.js";
import { Tabs } from "./tabs.js";
import { Uploader } from "./uploader.js";

const byId = (id) => document.getElementById(id);
const CONFIG_RETRY_MS = 5000;
const EXPIRY_REFRESH_MS = 15_000; // notes count minutes; the Images tab drops expired rows itself

const keyAdopted = adoptKeyFromFragment();
// The management link opened over an already open upload page changes only the fragment.
// Registered before the tabs' own listener, so the key is gone before they read the fragment.
window.addEventListener("hashchange", () => {
  if (adoptKeyFromFragment()) {
    keyChanged();
    showKeyStored();
  }
});

const gallery = new Gallery({
  table: byId("images-table"),
  body: byId("images-body"),
  empty: byId("images-empty"),
  noMatch: byId("images-no-match"),
  message: byId("images-message"),
  count: byId("images-count"),
  sentinel: byId("images-sentinel"),
  loading: byId("images-loading"),
  loadMore: byId("load-more"),
  search: byId("images-search"),
  viewButtons: [...document.querySelectorAll(".view-button")],
  selectionBar: byId("selection-bar"),
  selectAll: byId("select-all"),
  selectionCount: byId("selection-count"),
  deleteSelected: byId("delete-selected"),
  albumSelected: byId("album-selected"),
  albumMade: byId("album-made"),
});

const tabs = new Tabs(document.querySelector('[role="tablist"]'), (name) => {
  gallery.setActive(name === "images");
});

const uploader = new Uploader({
  zone: byId("dropzone"),
  input: byId("file-input"),
  list: byId("upload-list"),
  hint: byId("dropzone-hint"),
  notice: byId("upload-notice"),
  expiry: { field: byId("expiry-field"), select: byId("expiry-select"), hint: byId("expiry-hint") },
  onUploaded: (image) => gallery.addUploaded(image),
  onFilesArrived: () => tabs.select("upload"),
  onExpiryRefused: () => loadConfig(),
});

window.setInterval(() => refreshExpiryNotes(), EXPIRY_REFRESH_MS);

function showAdminState() {
  byId("admin-badge").hidden = !adminKey();
  showSharex();
}

let sharexConfig = null;

/** "Use with ShareX": a plain link, or with the admin key a download that carries the key. */
function showSharex() {
  if (!sharexConfig) return;
  byId("sharex-link").href = sharexConfig.sharex_url;
  byId("sharex").hidden = false;
  const keyed = sharexConfig.uploads === "key";
  byId("sharex-hint").textContent =
    keyed && !adminKey()
      ? "Uploads here need the admin key: open the management link first, so the file carries it."
      : "Downloads a custom uploader: open it and ShareX uploads screenshots here.";
}

byId("sharex-link").addEventListener("click", async (event) => {
  if (!adminKey()) return; // the plain link: the file without the key
  event.preventDefault();
  const notice = byId("page-notice");
  try {
    const { blob, filename } = await fetchSharexFile(byId("sharex-link").href);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch {
    notice.textContent = "The ShareX file could not be downloaded. Try again in a moment.";
    notice.hidden = false;
  }
});

function keyChanged() {
  showAdminState();
  uploader.refreshNotice();
  gallery.keyChanged();
}

byId("forget-key").addEventListener("click", () => {
  setAdminKey("");
  keyChanged();
  const notice = byId("page-notice");
  notice.textContent = "The admin key was removed from this browser.";
  notice.hidden = false;
  byId("tab-upload").focus();
});

// Another tab of this site stored or forgot the key.
window.addEventListener("storage", (event) => {
  if (event.key === null || event.key === "imagehost.adminKey") keyChanged();
});

byId("empty-upload").addEventListener("click", () => {
  tabs.select("upload", { focus: true });
  byId("dropzone").focus();
});

function showKeyStored() {
  const notice = byId("page-notice");
  notice.textContent =
    "Admin key stored in this browser: you can now delete any image from the Images tab.";
  notice.hidden = false;
}

if (keyAdopted) showKeyStored();
showAdminState();
tabs.fromFragment();

async function loadConfig() {
  try {
    const config = await fetchConfig();
    uploader.setConfig(config);
    sharexConfig = config.sharex_url ? config : null;
    showSharex();
  } catch {
    uploader.configMissing();
    window.setTimeout(loadConfig, CONFIG_RETRY_MS);
  }
}
loadConfig();
