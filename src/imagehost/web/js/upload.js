// The upload page: wires the tabs, the uploader and the image table to the server's config.

import { fetchConfig } from "./api.js";
import { Gallery } from "./gallery.js";
import { adminKey, adoptKeyFromFragment, setAdminKey } from "./storage.js";
import { Tabs } from "./tabs.js";
import { Uploader } from "./uploader.js";

const byId = (id) => document.getElementById(id);
const CONFIG_RETRY_MS = 5000;

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
  message: byId("images-message"),
  count: byId("images-count"),
  sentinel: byId("images-sentinel"),
  loading: byId("images-loading"),
  loadMore: byId("load-more"),
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
  onUploaded: (image) => gallery.addUploaded(image),
  onFilesArrived: () => tabs.select("upload"),
});

function showAdminState() {
  byId("admin-badge").hidden = !adminKey();
}

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
    uploader.setConfig(await fetchConfig());
  } catch {
    uploader.configMissing();
    window.setTimeout(loadConfig, CONFIG_RETRY_MS);
  }
}
loadConfig();
