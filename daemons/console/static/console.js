// The console follows the API's event stream (Server-Sent Events, the sign-in cookie goes
// with it) and fetches the page's main part again when something it shows has changed.
// No framework: the page is rendered by netd; this only swaps <main> and says whether
// the stream is live.
"use strict";
(function () {
  const body = document.body;
  const page = body.dataset.live;
  if (!page) return;
  const subject = body.dataset.subject || "";
  const kinds = body.dataset.kinds || "";
  const status = document.getElementById("live-state");
  const MIN_GAP_MS = 1000; // at most one refresh a second
  const PERIOD_MS = 15000; // heartbeats and polls change without events
  let timer = null;
  let lastRefresh = 0;
  let inflight = false;

  function show(text, on) {
    status.hidden = false;
    status.textContent = text;
    status.className = "live-state " + (on ? "on" : "off");
  }

  async function refresh() {
    timer = null;
    if (inflight) { schedule(); return; }
    inflight = true;
    lastRefresh = Date.now();
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("part", "main");
      const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.reload(); return; }
      if (answer.ok) {
        document.getElementById("main").innerHTML = await answer.text();
        body.dataset.refreshed = String(lastRefresh);
      }
    } catch (err) {
      show("refresh failed: " + err, false);
    } finally {
      inflight = false;
    }
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(refresh, Math.max(0, MIN_GAP_MS - (Date.now() - lastRefresh)));
  }

  function concerns(kind, data) {
    if (page === "overview") return true;
    if (!subject) return false;
    return data.user === subject || data.subject === subject || data.serial === subject;
  }

  // Every kind netd publishes (and the authentication history's rejects, when they come).
  const KINDS = [
    "session.start", "session.interim", "session.stop", "daemon.started", "daemon.stopped",
    "snmp.unreachable", "snmp.reachable", "snmp.error", "snmp.trap",
    "voltha.unreachable", "voltha.reachable", "voltha.alarm.raised", "voltha.alarm.cleared",
    "voltha.onu.discovered", "voltha.onu.refused", "voltha.onu.allowed", "voltha.port.state",
    "voltha.olt.added", "voltha.service.provisioned", "voltha.service.removed",
    "cpe.registered", "cpe.download_requested", "device.config_changed", "device.backup_failed",
    "device.host_key_changed", "radius.reject", "auth.reject",
  ];
  const query = kinds ? "?kinds=" + encodeURIComponent(kinds) : "";
  const source = new EventSource("/api/v1/events/stream" + query);
  source.onopen = function () { show("live", true); };
  source.onerror = function () { show("reconnecting to the event stream", false); };
  KINDS.forEach(function (kind) {
    source.addEventListener(kind, function (event) {
      let data = {};
      try { data = JSON.parse(event.data); } catch (err) { return; }
      body.dataset.lastEvent = kind;
      if (concerns(kind, data)) schedule();
    });
  });
  setInterval(schedule, PERIOD_MS);
})();
