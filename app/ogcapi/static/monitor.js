// The job monitor's only script (no inline script: the pages' Content-Security-Policy forbids it).
// It submits the execution form as the JSON execute request, dismisses a job, and keeps the job page
// and the job list current by polling their JSON every second; when a job's status changes (or the
// list gains a job), the part of the page that depends on it is fetched again as HTML and swapped in.
// With users signed in through the sign-in page, it signs in and out; every request it sends carries
// the header that lets the sign-in cookie count for a change (app/auth/browser.py).
"use strict";

const POLL_MS = 1000;
const ENDED = ["successful", "failed", "dismissed"];
const MONITOR = { "X-Requested-With": "hpc-wps-monitor" };

// fetch, from the monitor: the cookie goes along (same origin), with the header beside it.
function send(url, options = {}) {
  return fetch(url, { ...options, headers: { ...MONITOR, ...(options.headers || {}) } });
}

function asJson(url) {
  const u = new URL(url, location.href);
  u.searchParams.set("f", "json");
  return u.pathname + u.search;
}

function asHtml(url) {
  const u = new URL(url, location.href);
  u.searchParams.set("f", "html");
  return u.pathname + u.search;
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = false;
}

async function problemText(response) {
  try {
    const problem = await response.json();
    return [problem.title, problem.detail].filter(Boolean).join(": ") + (problem.locator ? ` (${problem.locator})` : "");
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

// -- the execution form ------------------------------------------------------------------------

function number(kind, text) {
  return kind === "integer" ? parseInt(text, 10) : kind === "number" ? parseFloat(text) : text;
}

function literal(kind, text) {
  if (kind === "boolean") return text === "true";
  if (kind === "integer" || kind === "number") {
    const value = number(kind, text);
    return Number.isNaN(value) ? text : value; // the service names the input at fault
  }
  return text;
}

function inputValue(field) {
  const kind = field.dataset.kind;
  const value = field.querySelector("[name=value]");
  if (kind === "complex") {
    const href = field.querySelector("[name=href]").value.trim();
    const mediaType = field.querySelector("[name=mediaType]").value;
    if (href) return { href: href, type: mediaType };
    return value.value === "" ? undefined : { value: value.value, mediaType: mediaType };
  }
  if (kind === "bbox") {
    if (value.value.trim() === "") return undefined;
    const bbox = value.value.split(/[\s,]+/).filter(Boolean).map(Number);
    return { bbox: bbox, crs: field.querySelector("[name=crs]").value };
  }
  if (value.multiple) {
    const chosen = Array.from(value.selectedOptions, (o) => literal(kind, o.value));
    return chosen.length ? chosen : undefined;
  }
  if (field.hasAttribute("data-multiple")) {
    const lines = value.value.split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.length ? lines.map((l) => literal(kind, l)) : undefined;
  }
  return value.value === "" ? undefined : literal(kind, value.value);
}

function executeRequest(form) {
  const inputs = {};
  for (const field of form.querySelectorAll("[data-input]")) {
    const value = inputValue(field);
    if (value !== undefined) inputs[field.dataset.input] = value;
  }
  // No output named: the job keeps every output its process sets (one named but not set fails the job).
  return { inputs: inputs, response: "document" };
}

function monitorLink(response) {
  const location = response.headers.get("Location");
  if (location) return location;
  const link = response.headers.get("Link") || "";
  const match = link.match(/<([^>]+)>;\s*rel="monitor"/);
  return match ? match[1] : null;
}

async function submitJob(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("execute-error");
  error.hidden = true;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await send(new URL(form.dataset.execution, location.href).pathname, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Prefer: "respond-async" },
      body: JSON.stringify(executeRequest(form)),
    });
    const job = response.ok ? monitorLink(response) : null;
    await response.arrayBuffer(); // read to its end, so leaving the page aborts nothing
    if (job) {
      location.assign(asHtml(job));
    } else {
      showError(error, response.ok ? "submitted, but the service named no job" : await problemText(response));
    }
  } catch (e) {
    showError(error, `the service did not answer: ${e}`);
  } finally {
    button.disabled = false;
  }
}

// -- live updates ------------------------------------------------------------------------------

function setProgress(bar, progress) {
  if (progress === undefined) bar.removeAttribute("value");
  else bar.value = progress;
}

function update(element, info) {
  element.dataset.status = info.status;
  for (const field of element.querySelectorAll("[data-field]")) {
    const name = field.dataset.field;
    if (name === "progress") setProgress(field, info.progress);
    else if (name === "percent") field.textContent = info.progress === undefined ? "" : `${info.progress} %`;
    else field.textContent = info[name] === undefined ? "" : info[name];
  }
}

async function swapFromPage(ids) {
  const response = await send(asHtml(location.href), { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of ids) {
    const fresh = page.getElementById(id);
    const old = document.getElementById(id);
    if (fresh && old) old.replaceWith(document.importNode(fresh, true));
  }
  wire();
}

async function pollJob(element) {
  const response = await send(asJson(location.href), { headers: { Accept: "application/json" } });
  if (!response.ok) return true;
  const info = await response.json();
  const changed = info.status !== element.dataset.status;
  update(element, info);
  if (changed) await swapFromPage(["live"]);
  return !ENDED.includes(info.status);
}

async function pollList(list) {
  const response = await send(asJson(location.href), { headers: { Accept: "application/json" } });
  if (!response.ok) return true;
  const page = await response.json();
  const shown = Array.from(list.querySelectorAll("[data-job]"), (row) => row.dataset.job);
  const listed = page.jobs.map((job) => job.jobID);
  if (shown.join() !== listed.join()) {
    await swapFromPage(["jobs"]);
    return true;
  }
  for (const info of page.jobs) {
    const row = list.querySelector(`[data-job="${CSS.escape(info.jobID)}"]`);
    if (row) update(row, info);
  }
  return true;
}

function poll(id, step) {
  const tick = async () => {
    const element = document.getElementById(id);
    let again = true;
    try {
      again = await step(element);
    } catch (e) {
      again = true; // a missed poll (the service restarting) is tried again
    }
    if (again) setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

async function dismiss(event) {
  const button = event.target;
  button.disabled = true;
  const response = await send(asJson(location.href), { method: "DELETE", headers: { Accept: "application/json" } });
  if (!response.ok) {
    showError(document.getElementById("job-error"), await problemText(response));
    button.disabled = false;
    return;
  }
  update(document.getElementById("job"), await response.json());
  await swapFromPage(["live"]);
}

// -- signing in and out (the token goes in a POST body, never in a URL) ----------------------------

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("signin-error");
  error.hidden = true;
  const response = await send(new URL(form.action, location.href).pathname, {
    method: "POST",
    headers: { Accept: "application/json" },
    body: new URLSearchParams(new FormData(form)),
  });
  if (!response.ok) {
    showError(error, await problemText(response));
    return;
  }
  form.reset();
  location.assign(asHtml(new URL("jobs", new URL(form.action, location.href)).href));
}

async function signOut(event) {
  event.preventDefault();
  const form = event.target;
  await send(new URL(form.action, location.href).pathname, { method: "POST" });
  location.assign(asHtml(new URL("signin", new URL(form.action, location.href)).href));
}

// -- the filter form: empty fields are left out, not sent as empty filters ----------------------

function dropEmpty(event) {
  for (const input of event.target.querySelectorAll("input")) {
    if (input.type !== "checkbox" && input.value === "") input.disabled = true;
  }
}

// Attaches handlers to what is on the page (again after a part was swapped in).
function wire() {
  const button = document.getElementById("dismiss");
  if (button && !button.dataset.wired) {
    button.dataset.wired = "1";
    button.addEventListener("click", dismiss);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("execute");
  if (form) form.addEventListener("submit", submitJob);
  const signin = document.getElementById("signin");
  if (signin) signin.addEventListener("submit", signIn);
  const signout = document.getElementById("signout");
  if (signout) signout.addEventListener("submit", signOut);
  const filters = document.getElementById("filters");
  if (filters) filters.addEventListener("submit", dropEmpty);
  const job = document.getElementById("job");
  if (job && !ENDED.includes(job.dataset.status)) poll("job", pollJob);
  if (document.getElementById("jobs")) poll("jobs", pollList);
  wire();
});
