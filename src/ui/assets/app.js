// gatehouse UI: a hand-written single page over the registry API (/v2/) and the UI's own api/ endpoints.
// No build step, no framework, no inline code: the page's Content-Security-Policy allows only this file.
"use strict";

const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const PAGE = 50;
const state = { me: null, repos: null, reposDone: false, tagCounts: new Map(), perms: new Map(), filter: "", page: 0, sort: { key: "name", dir: 1 } };

// ---- small helpers -------------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (sel) => document.querySelector(sel);
const main = () => $("#main");
function show(...nodes) { main().replaceChildren(...nodes); }
function size(n) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}
function date(s) {
  if (!s) return "–";
  const d = new Date(s);
  return isNaN(d) ? s : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
function short(digest) { return digest ? digest.replace(/^sha256:/, "").slice(0, 12) : "–"; }
function mediaLabel(t) {
  return ({
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.oci.image.manifest.v1+json": "OCI image",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker v2 list",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker v2",
  })[t] || t || "–";
}
const isIndex = (t) => /index|manifest\.list/.test(t || "");
function repoPath(repo) { return repo.split("/").map(encodeURIComponent).join("/"); }
// A tag or digest as a path segment: their grammars need no escaping, and the registry reads `:` literally.
function refPath(ref) { return /^[A-Za-z0-9_.:+-]+$/.test(ref) ? ref : encodeURIComponent(ref); }
function hrefRepo(repo) { return "#/r/" + encodeURIComponent(repo); }
function hrefImage(repo, ref) { return "#/r/" + encodeURIComponent(repo) + "/m/" + encodeURIComponent(ref); }

function copyButton(text, label) {
  return el("button", {
    type: "button", class: "small", "aria-label": label, text: "Copy",
    onclick: async (ev) => {
      const b = ev.currentTarget;
      try { await navigator.clipboard.writeText(text); b.textContent = "Copied"; }
      catch (_) {
        const r = document.createRange(); r.selectNodeContents(b.previousSibling || b);
        getSelection().removeAllRanges(); getSelection().addRange(r); b.textContent = "Selected";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    },
  });
}

// Runs `f` over `items` with at most `n` at once.
async function pool(items, n, f) {
  let i = 0;
  const work = async () => { while (i < items.length) { const k = i++; await f(items[k], k); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, work));
}

// ---- talking to the server ------------------------------------------------------------------------------
class NeedLogin extends Error {}
async function call(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const method = opts.method || "GET";
  if (!["GET", "HEAD"].includes(method) && state.me && state.me.csrf) headers.set("X-CSRF-Token", state.me.csrf);
  const r = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store" });
  if (r.status === 401 && !opts.allow401) { state.me = null; throw new NeedLogin(); }
  return r;
}
async function errorText(r) {
  try { const j = await r.json(); return (j.errors && j.errors[0] && (j.errors[0].message || j.errors[0].code)) || r.statusText; }
  catch (_) { return r.status + " " + r.statusText; }
}
const v2 = (repo, rest) => "/v2/" + repoPath(repo) + rest;

async function manifest(repo, ref) {
  const r = await call(v2(repo, "/manifests/" + refPath(ref)), { headers: { Accept: ACCEPT } });
  if (!r.ok) throw new Error(await errorText(r));
  const text = await r.text();
  const json = JSON.parse(text);
  return { json, text, digest: r.headers.get("Docker-Content-Digest"), type: json.mediaType || (r.headers.get("Content-Type") || "").split(";")[0], bytes: text.length };
}
async function blobJson(repo, digest) {
  const r = await call(v2(repo, "/blobs/" + digest));
  if (!r.ok) throw new Error(await errorText(r));
  return r.json();
}
async function referrers(repo, digest) {
  try {
    const r = await call(v2(repo, "/referrers/" + digest), { headers: { Accept: "application/vnd.oci.image.index.v1+json" } });
    if (!r.ok) return [];
    return (await r.json()).manifests || [];
  } catch (e) { if (e instanceof NeedLogin) throw e; return []; }
}
async function tagList(repo) {
  let url = v2(repo, "/tags/list?n=1000");
  const tags = [];
  while (url) {
    const r = await call(url);
    if (!r.ok) throw new Error(await errorText(r));
    tags.push(...((await r.json()).tags || []));
    url = nextLink(r);
  }
  return tags;
}
function nextLink(r) {
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(r.headers.get("Link") || "");
  return m ? m[1] : null;
}
async function permissions(repos) {
  const want = repos.filter((r) => !state.perms.has(r));
  if (!want.length) return;
  const q = want.map((r) => "repository=" + encodeURIComponent(r)).join("&");
  const r = await call("api/permissions?" + q);
  if (!r.ok) return;
  const j = await r.json();
  for (const [k, v] of Object.entries(j.repositories || {})) state.perms.set(k, v);
}
const mayDelete = (repo) => { const p = state.perms.get(repo); return !!(p && p.delete); };

// The referrer kinds worth a badge.
function referrerKind(d) {
  const t = (d.artifactType || d.mediaType || "").toLowerCase();
  if (/sig|cosign|notation|signature/.test(t)) return ["signature", "sig"];
  if (/spdx|cyclonedx|sbom|syft/.test(t)) return ["SBOM", "sbom"];
  return [d.artifactType || "artifact", ""];
}
function referrerBadges(list) {
  return list.map((d) => { const [label, cls] = referrerKind(d); return el("span", { class: "badge " + cls, title: d.digest, text: label }); });
}

// What one tag points at: digest, media type, platforms, compressed size and created date.
async function describe(repo, ref) {
  const m = await manifest(repo, ref);
  const out = { ref, digest: m.digest, type: m.type, platforms: [], size: 0, created: null, manifest: m };
  if (isIndex(m.type)) {
    const children = (m.json.manifests || []);
    await pool(children, 3, async (c) => {
      const p = c.platform || {};
      const attestation = (c.annotations || {})["vnd.docker.reference.type"] === "attestation-manifest";
      const plat = { os: p.os, arch: p.architecture, variant: p.variant, digest: c.digest, size: null, attestation };
      out.platforms.push(plat);
      try {
        const cm = await manifest(repo, c.digest);
        plat.size = imageSize(cm.json);
        out.size += plat.size;
        if (!out.created && !attestation && cm.json.config) out.created = (await blobJson(repo, cm.json.config.digest)).created;
      } catch (e) { if (e instanceof NeedLogin) throw e; }
    });
    out.platforms.sort((a, b) => platformName(a).localeCompare(platformName(b)));
  } else {
    out.size = imageSize(m.json);
    try {
      if (m.json.config) {
        const config = await blobJson(repo, m.json.config.digest);
        out.created = config.created;
        if (config.os) out.platforms.push({ os: config.os, arch: config.architecture, variant: config.variant });
      }
    } catch (e) { if (e instanceof NeedLogin) throw e; }
  }
  out.referrers = m.digest ? await referrers(repo, m.digest) : [];
  return out;
}
function imageSize(json) {
  return (json.config ? json.config.size || 0 : 0) + (json.layers || []).reduce((s, l) => s + (l.size || 0), 0);
}
function platformName(p) { return [p.os || "?", p.arch || "?", p.variant].filter(Boolean).join("/"); }

// ---- login ----------------------------------------------------------------------------------------------
function loginView(message) {
  $("#logout").hidden = true;
  $("#storage-link").hidden = true;
  $("#who").textContent = "";
  const error = el("p", { id: "login-error", class: "error", role: "alert", text: message || "" });
  const user = el("input", { id: "login-user", name: "username", autocomplete: "username", required: true });
  const pass = el("input", { id: "login-pass", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = el("form", { class: "login", "aria-labelledby": "login-title", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const b = form.querySelector("button"); b.disabled = true;
    try {
      const basic = "Basic " + btoa(unescape(encodeURIComponent(user.value + ":" + pass.value)));
      const r = await fetch("api/login", { method: "POST", headers: { Authorization: basic }, credentials: "same-origin" });
      if (r.ok) {
        const who = await fetch("api/whoami", { credentials: "same-origin", cache: "no-store" });
        state.me = who.ok ? await who.json() : Object.assign({ auth: true }, await r.json());
        await start();
        return;
      }
      error.textContent = r.status === 429 ? "Too many failed logins; try again later." : "Wrong user name or password.";
      pass.value = ""; pass.focus();
    } catch (e) { error.textContent = "Could not reach the server: " + e.message; }
    finally { b.disabled = false; }
  } },
    el("h1", { id: "login-title", text: "Log in" }),
    el("label", {}, "User name", user),
    el("label", {}, "Password", pass),
    error,
    el("button", { type: "submit", id: "login-submit", class: "primary", text: "Log in" }));
  show(form);
  user.focus();
}
async function logout() {
  try { await call("api/logout", { method: "POST", allow401: true }); } catch (_) { /* gone already */ }
  state.me = null; state.perms.clear(); state.repos = null; state.tagCounts.clear(); state.usage = null;
  location.hash = "#/";
  loginView("Logged out.");
}

// ---- repository list ------------------------------------------------------------------------------------
function withN(url, n) { return url.replace(/([?&]n=)\d+/, (_, k) => k + n); }
// The first page is small enough to paint at once; the rest come in big pages (a registry that caps `n`
// below the asked size answers 400 or a short page with a Link; both are followed).
async function loadCatalog(onFirstPage) {
  let url = "/v2/_catalog?n=1000";
  let big = true;
  state.repos = []; state.reposDone = false;
  let first = true;
  while (url) {
    const r = await call(url);
    if (r.status === 400 && big && !first) { big = false; url = withN(url, 1000); continue; }
    if (!r.ok) throw new Error(await errorText(r));
    state.repos.push(...((await r.json()).repositories || []));
    url = nextLink(r);
    if (url && big) url = withN(url, 10000);
    if (first) { first = false; onFirstPage(); } else if (currentView === "repos") renderRepos();
  }
  state.reposDone = true;
  if (currentView === "repos") renderRepos();
}
function filtered() {
  const f = state.filter.toLowerCase();
  return f ? state.repos.filter((r) => r.toLowerCase().includes(f)) : state.repos;
}
let repoTable = null;
function reposView() {
  const filter = el("input", { id: "filter", type: "search", placeholder: "Filter repositories", "aria-label": "Filter repositories", value: state.filter,
    oninput: (ev) => { state.filter = ev.target.value; state.page = 0; renderRepos(); } });
  repoTable = el("tbody", { id: "repo-rows" });
  show(
    el("h1", { text: "Repositories" }),
    el("div", { class: "toolbar" }, filter, el("span", { id: "repo-count", class: "muted", "aria-live": "polite" })),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Repositories" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Repository" }), el("th", { scope: "col", class: "num", text: "Tags" }))),
      repoTable)),
    el("nav", { class: "pager", "aria-label": "Pages" },
      el("button", { id: "prev", type: "button", text: "Previous", onclick: () => { state.page--; renderRepos(); } }),
      el("span", { id: "page-info" }),
      el("button", { id: "next", type: "button", text: "Next", onclick: () => { state.page++; renderRepos(); } })));
  if (state.repos) renderRepos();
  else loadCatalog(() => { if (currentView === "repos") renderRepos(); }).catch(failed);
}
let painted = false;
function renderRepos() {
  if (!repoTable || !state.repos) return;
  const list = filtered();
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(Math.max(0, state.page), pages - 1);
  const rows = list.slice(state.page * PAGE, state.page * PAGE + PAGE);
  repoTable.replaceChildren(...rows.map((repo) => el("tr", { "data-repo": repo },
    el("td", {}, el("a", { href: hrefRepo(repo), text: repo })),
    el("td", { class: "num tag-count", text: state.tagCounts.has(repo) ? state.tagCounts.get(repo) : "…" }))));
  if (!rows.length) repoTable.append(el("tr", {}, el("td", { colspan: 2, class: "muted", text: state.repos.length ? "No repository matches." : "No repositories yet." })));
  $("#repo-count").textContent = list.length + (state.filter ? " of " + state.repos.length : "") + " repositories" + (state.reposDone ? "" : " (loading…)");
  $("#page-info").textContent = "Page " + (state.page + 1) + " of " + pages;
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = state.page >= pages - 1;
  if (!painted) {
    painted = true;
    requestAnimationFrame(() => setTimeout(() => { performance.mark("gatehouse:repos-painted"); document.body.dataset.reposPainted = String(performance.now()); }, 0));
  }
  countTags(rows);
}
function countTags(rows) {
  const want = rows.filter((r) => !state.tagCounts.has(r));
  pool(want, 6, async (repo) => {
    try {
      const r = await call(v2(repo, "/tags/list"));
      state.tagCounts.set(repo, r.ok ? ((await r.json()).tags || []).length : "–");
    } catch (e) { if (e instanceof NeedLogin) throw e; state.tagCounts.set(repo, "–"); }
    const cell = repoTable && repoTable.querySelector('tr[data-repo="' + CSS.escape(repo) + '"] .tag-count');
    if (cell) cell.textContent = state.tagCounts.get(repo);
  }).catch(failed);
}

// ---- tags of one repository -----------------------------------------------------------------------------
async function tagsView(repo) {
  delete document.body.dataset.tagsLoaded;
  show(el("p", { class: "loading", text: "Loading " + repo + "…" }));
  const [tags] = await Promise.all([tagList(repo), permissions([repo])]);
  const rows = tags.map((t) => ({ ref: t, pending: true }));
  const usageLine = el("span", { id: "repo-usage" });
  usage().then((u) => {
    const mine = u && u.repositories.find((r) => r.name === repo);
    if (mine) usageLine.textContent = " · " + size(mine.bytes) + " stored" + (mine.exclusive_bytes === null ? "" : ", " + size(mine.exclusive_bytes) + " only here");
  }).catch((e) => { if (e instanceof NeedLogin) failed(e); });
  const body = el("tbody", { id: "tag-rows" });
  const sortButton = (key, label) => el("button", { type: "button", "data-sort": key, onclick: () => {
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : (key === "name" ? 1 : -1) }; render();
  } }, label);
  const head = el("tr", {},
    el("th", { scope: "col", "data-col": "name" }, sortButton("name", "Tag")),
    el("th", { scope: "col", text: "Digest" }),
    el("th", { scope: "col", class: "optional", text: "Type" }),
    el("th", { scope: "col", text: "Platforms" }),
    el("th", { scope: "col", class: "num", "data-col": "size" }, sortButton("size", "Size")),
    el("th", { scope: "col", class: "optional", "data-col": "created" }, sortButton("created", "Created")),
    el("th", { scope: "col", text: "Referrers" }),
    el("th", { scope: "col", text: "" }));
  function render() {
    const { key, dir } = state.sort;
    const val = (r) => key === "name" ? r.ref : key === "size" ? (r.size || 0) : (r.created || "");
    rows.sort((a, b) => { const x = val(a), y = val(b); return (x < y ? -1 : x > y ? 1 : 0) * dir || a.ref.localeCompare(b.ref); });
    for (const th of head.querySelectorAll("th[data-col]")) th.setAttribute("aria-sort", th.dataset.col === key ? (dir > 0 ? "ascending" : "descending") : "none");
    body.replaceChildren(...rows.map((r) => el("tr", { "data-tag": r.ref },
      el("td", {}, el("a", { href: hrefImage(repo, r.ref), text: r.ref })),
      el("td", { class: "mono" }, r.digest ? el("span", { class: "copy" }, el("code", { title: r.digest, text: short(r.digest) }), copyButton(r.digest, "Copy the digest of " + r.ref)) : (r.error || "…")),
      el("td", { class: "optional", text: r.pending ? "…" : mediaLabel(r.type) }),
      el("td", { class: "platforms" }, (r.platforms || []).filter((p) => !p.attestation).map((p) => el("span", { class: "badge", text: platformName(p) }))),
      el("td", { class: "num size", text: r.pending ? "…" : size(r.size) }),
      el("td", { class: "optional", text: r.pending ? "…" : date(r.created) }),
      el("td", { class: "referrers" }, referrerBadges(r.referrers || [])),
      el("td", {}, mayDelete(repo) && r.digest ? el("button", { type: "button", class: "small danger", "data-delete": r.ref, "aria-label": "Delete " + repo + ":" + r.ref, text: "Delete",
        onclick: () => confirmDelete(repo, r, rows) }) : null))));
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No tags." })));
  }
  show(
    el("p", {}, el("a", { href: "#/", text: "← Repositories" })),
    el("h1", { text: repo }),
    pullLine(repo, "latest", tags.includes("latest") ? "latest" : tags[0]),
    el("p", { id: "tag-count", class: "muted", text: tags.length + " tags" }, usageLine),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Tags of " + repo }, el("thead", {}, head), body)));
  render();
  await pool(rows, 4, async (row) => {
    try { Object.assign(row, await describe(repo, row.ref)); }
    catch (e) { if (e instanceof NeedLogin) throw e; row.error = e.message; }
    row.pending = false;
    if (currentView === "tags:" + repo) render();
  });
  document.body.dataset.tagsLoaded = repo;
}
function pullLine(repo, _fallback, tag) {
  if (!tag) return el("span");
  const text = "docker pull " + location.host + "/" + repo + (tag.startsWith("sha256:") ? "@" : ":") + tag;
  return el("div", { class: "pull" }, el("code", { id: "pull-command", text }), copyButton(text, "Copy the pull command"));
}

// ---- delete -----------------------------------------------------------------------------------------------
// Confirms, then deletes the manifest by digest; says which other tags point at it (they go too).
// Rows still being described get their digest first: a click before the table has loaded must not say that
// no other tag goes with the manifest when one does.
async function confirmDelete(repo, row, rows) {
  await fillDigests(repo, rows || []);
  const others = (rows || []).filter((r) => r.digest === row.digest && r.ref !== row.ref).map((r) => r.ref);
  const dialog = $("#confirm");
  $("#confirm-title").textContent = "Delete " + repo + ":" + row.ref + "?";
  $("#confirm-body").replaceChildren(
    el("p", {}, "This deletes the manifest ", el("code", { text: row.digest }), "."),
    others.length ? el("p", { id: "confirm-others" }, "These tags point at the same manifest and go with it: ", others.map((t) => el("code", { class: "badge", text: t })))
      : el("p", { class: "muted", text: "No other tag points at it." }));
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus();
  const choice = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (choice !== "delete") return;
  const r = await call(v2(repo, "/manifests/" + row.digest), { method: "DELETE" });
  if (r.status === 202 || r.ok) {
    state.tagCounts.delete(repo);
    location.hash = hrefRepo(repo);
    await route(true);
    main().prepend(el("p", { class: "notice", role: "status", id: "deleted", text: "Deleted " + repo + ":" + row.ref + (others.length ? " and " + others.join(", ") : "") + "." }));
  } else {
    alertBox("Could not delete: " + (await errorText(r)));
  }
}
// Fills in the digest of every row that has none yet, by a HEAD of its tag.
async function fillDigests(repo, rows) {
  await pool(rows.filter((r) => !r.digest), 6, async (row) => {
    const r = await call(v2(repo, "/manifests/" + refPath(row.ref)), { method: "HEAD", headers: { Accept: ACCEPT } });
    if (r.ok) row.digest = r.headers.get("Docker-Content-Digest");
  });
}
function alertBox(text) { main().prepend(el("p", { class: "error", role: "alert", text })); }

// ---- one image --------------------------------------------------------------------------------------------
async function imageView(repo, ref) {
  delete document.body.dataset.imageLoaded;
  show(el("p", { class: "loading", text: "Loading " + repo + ":" + ref + "…" }));
  await permissions([repo]);
  const d = await describe(repo, ref);
  const m = d.manifest;
  const parts = [
    el("p", {}, el("a", { href: "#/", text: "Repositories" }), " / ", el("a", { href: hrefRepo(repo), text: repo })),
    el("h1", { text: repo + (ref.startsWith("sha256:") ? "@" + short(ref) : ":" + ref) }),
    pullLine(repo, null, ref),
    el("dl", { class: "facts" },
      el("dt", { text: "Digest" }), el("dd", {}, el("span", { class: "copy" }, el("code", { id: "image-digest", text: d.digest || "–" }), d.digest ? copyButton(d.digest, "Copy the digest") : null)),
      el("dt", { text: "Media type" }), el("dd", { id: "image-type", text: mediaLabel(d.type) + " (" + d.type + ")" }),
      el("dt", { text: "Size" }), el("dd", { id: "image-size", text: size(d.size) }),
      el("dt", { text: "Created" }), el("dd", { text: date(d.created) })),
  ];
  if (mayDelete(repo) && d.digest) {
    let rows = null;
    parts.push(el("p", {}, el("button", { type: "button", class: "danger", id: "delete-image", "aria-label": "Delete " + repo + ":" + ref, text: "Delete…", onclick: async () => {
      if (!rows) rows = (await tagList(repo).catch(() => [])).map((t) => ({ ref: t }));
      confirmDelete(repo, { ref, digest: d.digest }, rows);
    } })));
  }
  if (isIndex(d.type)) {
    parts.push(el("h2", { text: "Platforms" }), el("div", { class: "table-wrap" }, el("table", { id: "platforms", "aria-label": "Platforms" },
      el("thead", {}, el("tr", {}, el("th", { text: "Platform" }), el("th", { text: "Digest" }), el("th", { class: "num", text: "Size" }))),
      el("tbody", {}, d.platforms.map((p) => el("tr", {},
        el("td", { text: platformName(p) + (p.attestation ? " (attestation)" : "") }),
        el("td", {}, el("a", { href: hrefImage(repo, p.digest), class: "mono", text: short(p.digest) })),
        el("td", { class: "num", text: size(p.size) })))))));
  } else if (m.json.config) {
    let config = null;
    try { config = await blobJson(repo, m.json.config.digest); } catch (e) { if (e instanceof NeedLogin) throw e; }
    parts.push(el("h2", { text: "Layers" }), el("div", { class: "table-wrap" }, el("table", { id: "layers", "aria-label": "Layers" },
      el("thead", {}, el("tr", {}, el("th", { text: "#" }), el("th", { text: "Digest" }), el("th", { class: "optional", text: "Media type" }), el("th", { class: "num", text: "Size" }))),
      el("tbody", {}, (m.json.layers || []).map((l, i) => el("tr", {},
        el("td", { text: i + 1 }), el("td", { class: "mono", title: l.digest, text: short(l.digest) }),
        el("td", { class: "optional", text: l.mediaType }), el("td", { class: "num", text: size(l.size) })))))));
    if (config) {
      const hist = config.history || [];
      parts.push(el("h2", { text: "History" }), hist.length ? el("div", { class: "table-wrap" }, el("table", { id: "history", "aria-label": "History" },
        el("thead", {}, el("tr", {}, el("th", { text: "Created" }), el("th", { text: "Step" }))),
        el("tbody", {}, hist.map((h) => el("tr", {}, el("td", { class: "optional", text: date(h.created) }),
          el("td", { class: "mono", text: (h.created_by || h.comment || "") + (h.empty_layer ? "  (no layer)" : "") }))))))
        : el("p", { class: "muted", text: "No history recorded." }));
      const labels = Object.entries((config.config || {}).Labels || {});
      parts.push(el("h2", { text: "Labels" }), labels.length ? el("dl", { class: "facts", id: "labels" }, labels.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]))
        : el("p", { class: "muted", text: "No labels." }));
      parts.push(el("h2", { text: "Config" }), el("pre", { id: "config-json", tabindex: "0", "aria-label": "Config JSON", text: JSON.stringify(config, null, 2) }));
    }
  }
  parts.push(el("h2", { text: "Referrers" }), d.referrers.length ? el("ul", { id: "referrers" }, d.referrers.map((r) => el("li", {},
    referrerBadges([r]), " ", el("a", { href: hrefImage(repo, r.digest), class: "mono", text: short(r.digest) }), " ", el("span", { class: "muted", text: r.artifactType || r.mediaType || "" }))))
    : el("p", { class: "muted", text: "No referrers." }));
  parts.push(el("h2", { text: "Manifest" }), el("pre", { id: "manifest-json", tabindex: "0", "aria-label": "Manifest JSON", text: JSON.stringify(m.json, null, 2) }));
  show(...parts);
  document.body.dataset.imageLoaded = repo + ":" + ref;
}

// ---- storage -----------------------------------------------------------------------------------------------
// The server measures at most every 30 s; the page keeps an answer for as long.
async function usage() {
  if (!state.me.usage) return null;
  if (state.usage && Date.now() - state.usage.fetched < 30000) return state.usage.body;
  const r = await call("api/usage");
  if (!r.ok) throw new Error(await errorText(r));
  state.usage = { fetched: Date.now(), body: await r.json() };
  return state.usage.body;
}
async function storageView() {
  delete document.body.dataset.storageLoaded;
  show(el("p", { class: "loading", text: "Measuring storage…" }));
  const u = await usage();
  if (!u) { show(el("h1", { text: "Storage" }), el("p", { class: "muted", text: "Storage usage is reported for the embedded registry only." })); return; }
  const rows = [...u.repositories].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  const gc = u.gc || {};
  const gcText = gc.last_run
    ? "Last garbage collection " + date(new Date(gc.last_run * 1000).toISOString()) + ", took " + gc.last_duration_seconds.toFixed(1) + " s" + (u.whole_store ? "; " + size(gc.reclaimable_bytes) + " unreferenced at its mark; " + size(gc.bytes_freed_since_start) + " freed since this server started." : ".")
    : "No garbage collection has run since this server started" + (gc.interval_seconds ? " (it runs every " + gc.interval_seconds + " s)." : " (none is scheduled; GATEHOUSE_GC_INTERVAL sets one).");
  show(
    el("h1", { text: "Storage" }),
    el("p", { id: "storage-total" }, size(u.bytes) + " in " + rows.length + " repositories" + (u.whole_store ? ", " + size(u.exclusive_bytes) + " of it in one repository only" : "") + (u.upload_bytes ? "; " + size(u.upload_bytes) + " in uploads in progress" : "") + "."),
    el("p", { id: "last-gc", class: "muted", text: gcText }),
    el("p", { class: "muted", text: "Measured " + date(new Date(u.measured_at * 1000).toISOString()) + ". A blob shared by several repositories counts in each" + (u.whole_store ? "; \u201conly here\u201d is what deleting the repository would free." : "; \u201conly here\u201d is shown to users who may pull every repository.") }),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Storage per repository" },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col", text: "Repository" }), el("th", { scope: "col", class: "num", text: "Tags" }),
        el("th", { scope: "col", class: "num optional", text: "Manifests" }), el("th", { scope: "col", class: "num", text: "Size" }),
        el("th", { scope: "col", class: "num", text: "Only here" }), el("th", { scope: "col", class: "num optional", text: "Uploads" }))),
      el("tbody", { id: "usage-rows" }, ...rows.map((r) => el("tr", { "data-repo": r.name },
        el("td", {}, el("a", { href: hrefRepo(r.name), text: r.name })),
        el("td", { class: "num", text: String(r.tags) }),
        el("td", { class: "num optional", text: String(r.manifests) }),
        el("td", { class: "num usage-bytes", text: size(r.bytes) }),
        el("td", { class: "num", text: size(r.exclusive_bytes) }),
        el("td", { class: "num optional", text: r.uploads ? r.uploads + " (" + size(r.upload_bytes) + ")" : "–" }))),
        rows.length ? null : el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No repositories yet." }))))));
  document.body.dataset.storageLoaded = "1";
}

// ---- routing ------------------------------------------------------------------------------------------------
let currentView = "";
function failed(e) {
  if (e instanceof NeedLogin) { loginView(); return; }
  console.error(e);
  alertBox("Something went wrong: " + e.message);
}
async function route(force) {
  if (!state.me) return loginView();
  const h = location.hash || "#/";
  let m;
  try {
    if ((m = /^#\/r\/([^/]+)\/m\/([^/]+)$/.exec(h))) {
      currentView = "image:" + decodeURIComponent(m[1]);
      await imageView(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    } else if ((m = /^#\/r\/([^/]+)$/.exec(h))) {
      const repo = decodeURIComponent(m[1]);
      if (force !== true && currentView === "tags:" + repo) return;
      currentView = "tags:" + repo;
      await tagsView(repo);
    } else if (h === "#/storage") {
      currentView = "storage";
      await storageView();
    } else {
      currentView = "repos";
      reposView();
    }
    main().focus({ preventScroll: true });
  } catch (e) { failed(e); }
}
async function start() {
  $("#who").textContent = state.me.user ? "Logged in as " + state.me.user : "Authentication is off";
  $("#logout").hidden = !state.me.auth;
  $("#storage-link").hidden = !state.me.usage;
  await route(true);
}
window.addEventListener("hashchange", () => route(true));
document.addEventListener("keydown", (ev) => {
  if (ev.key === "/" && document.activeElement.tagName !== "INPUT" && $("#filter")) { ev.preventDefault(); $("#filter").focus(); }
});
document.addEventListener("DOMContentLoaded", async () => {
  $("#logout").addEventListener("click", logout);
  try {
    const r = await fetch("api/whoami", { credentials: "same-origin", cache: "no-store" });
    if (r.ok) { state.me = await r.json(); await start(); } else loginView();
  } catch (e) { loginView("Could not reach the server: " + e.message); }
});
