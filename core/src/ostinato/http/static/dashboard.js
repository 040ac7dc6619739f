// The ostinato dashboard: actions through the JSON API, live refresh, sign-in. No dependencies.
"use strict";

function show(text, ok) {
  const out = document.getElementById("action-result");
  if (out) { out.textContent = text; out.className = "result " + (ok ? "ok" : "error"); }
}

async function call(method, url, body) {
  const init = { method: method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let message = response.status + " " + response.statusText;
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); if (data && data.error) message = data.error; } catch (e) { /* not JSON */ }
  }
  return { ok: response.ok, message: message, data: data };
}

// Where to go after an action: a new instance's page (restart), a given page, or here again.
function after(button, result) {
  if (button.dataset.follow === "instance" && result.data && result.data.id) {
    return document.body.dataset.root + "/ui/instances/" + encodeURIComponent(result.data.id);
  }
  return button.dataset.then || window.location.href;
}

function wireActions(root) {
  const box = root.querySelector("#actions");
  if (!box) return;
  const api = box.dataset.api;
  box.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", async function () {
      if (!window.confirm(button.dataset.confirm)) return;
      button.disabled = true;
      const result = await call(button.dataset.method, api + button.dataset.path);
      show(result.ok ? button.textContent + ": done" : result.message, result.ok);
      if (result.ok) {
        const target = after(button, result);
        setTimeout(function () { window.location.href = target; }, 400);
      } else {
        button.disabled = false;
      }
    });
  });
  const raise = box.querySelector("#raise-event");
  if (raise) {
    raise.addEventListener("submit", async function (event) {
      event.preventDefault();
      const name = raise.elements.event.value.trim();
      let data;
      try { data = JSON.parse(raise.elements.data.value || "null"); } catch (e) {
        show("The event data is not JSON: " + e.message, false); return;
      }
      if (!window.confirm("Raise event '" + name + "' on this instance?")) return;
      const result = await call("POST", api + "/raiseEvent/" + encodeURIComponent(name), data);
      show(result.ok ? "Event '" + name + "' raised" : result.message, result.ok);
      if (result.ok) setTimeout(function () { window.location.reload(); }, 400);
    });
  }
}

function wireLive() {
  const live = document.getElementById("live");
  if (!live) return;
  let timer = null;
  live.checked = window.localStorage.getItem("ostinato.live") === "1";
  async function refresh() {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("live-region");
    const here = document.getElementById("live-region");
    const busy = here && here.contains(document.activeElement) && document.activeElement.tagName !== "BODY";
    if (fresh && here && !busy) {
      here.replaceWith(fresh);
      wireActions(document);
      document.body.dataset.refreshed = String(Date.now());
    }
  }
  function apply() {
    window.localStorage.setItem("ostinato.live", live.checked ? "1" : "0");
    if (timer) { clearInterval(timer); timer = null; }
    if (live.checked) timer = setInterval(refresh, 2000);
  }
  live.addEventListener("change", apply);
  apply();
}

function wireLogin() {
  const form = document.getElementById("login");
  if (!form) return;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const result = await call("POST", document.body.dataset.root + "/ui/session", { key: form.elements.key.value });
    if (result.ok) { window.location.href = form.dataset.next; return; }
    const error = document.getElementById("login-error");
    error.textContent = result.message;
    error.hidden = false;
  });
}

function wireSignOut() {
  const button = document.getElementById("sign-out");
  if (!button) return;
  button.addEventListener("click", async function () {
    await call("DELETE", document.body.dataset.root + "/ui/session");
    window.location.href = document.body.dataset.root + "/ui/login";
  });
}

document.addEventListener("DOMContentLoaded", function () {
  wireActions(document);
  wireLive();
  wireLogin();
  wireSignOut();
});
