// bty-web: the little JavaScript the UI has. Every page works without it; this adds live
// updates from the server-sent-event stream (/events/machines), uploads with a progress bar,
// confirmation dialogs and copy buttons. No framework, no build step.
"use strict";
(function () {
  var csrf = document.body.getAttribute("data-csrf") || "";

  function human(n) {
    if (n == null) return "—";
    if (n < 1024) return n + " B";
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"], i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return n.toFixed(1) + " " + units[i];
  }

  // Re-fetches this page and swaps every element marked data-live with its fresh copy, so
  // the server stays the only place that renders HTML.
  var refreshTimer = null, refreshing = false;
  function refresh() {
    if (refreshing) { scheduleRefresh(); return; }
    refreshing = true;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (!fresh) return;
          // Keep the operator's selection (bulk actions) across the swap.
          var picked = {};
          el.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) { picked[c.value] = 1; });
          var node = document.importNode(fresh, true);
          node.querySelectorAll("input[type=checkbox]").forEach(function (c) { if (picked[c.value]) c.checked = true; });
          el.replaceWith(node);
        });
        setupPolling();
      })
      .catch(function () {})
      .then(function () { refreshing = false; });
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 250);
  }

  var pollTimer = null;
  function setupPolling() {
    clearInterval(pollTimer);
    var el = document.querySelector("[data-poll]");
    if (el) pollTimer = setInterval(refresh, parseInt(el.getAttribute("data-poll"), 10) || 2000);
  }

  // Seconds as the server's duration filter writes them.
  function duration(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + s % 60 + " s";
    return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
  }

  var flashing = {};
  // Live progress: patch the state in place (it changes every second while flashing). A stall
  // without posts arrives as a "machine" message and re-renders from the server.
  function onProgress(p) {
    var pct = p.total_bytes ? Math.min(100, Math.floor(p.bytes_written * 100 / p.total_bytes)) : null;
    var label = p.stalled ? "stalled" + (p.phase ? " in " + p.phase : "") : pct == null ? "flashing" : "flashing " + pct + "%";
    var speed = p.rate && !p.stalled ? " · " + human(p.rate) + "/s" + (p.eta_seconds != null ? " · " + duration(p.eta_seconds) + " left" : "") : "";
    document.querySelectorAll('[data-mac="' + p.mac + '"]').forEach(function (scope) {
      scope.querySelectorAll("[data-state]").forEach(function (s) {
        s.textContent = label;
        s.className = p.stalled ? "pill wait" : "pill busy";
      });
      var cell = scope.querySelector("td.state");
      if (cell && pct != null) {
        var bar = cell.querySelector("progress") || cell.appendChild(document.createElement("progress"));
        bar.max = 100; bar.value = pct;
      }
      var box = scope.querySelector("[data-progress]");
      if (box) {
        box.hidden = false;
        var b = box.querySelector("[data-bar]");
        if (b && pct != null) b.value = pct;
        var t = box.querySelector("[data-progress-text]");
        if (t) t.textContent = human(p.bytes_written) + (p.total_bytes ? " of " + human(p.total_bytes) : "") + (p.phase ? " · " + p.phase : "") + speed;
        var stalled = box.parentNode.querySelector("[data-stalled]");
        if (stalled && !p.stalled) stalled.remove();
      }
    });
    // The dashboard counts change when a machine starts flashing, not with every percent.
    if (document.getElementById("counts") && !flashing[p.mac]) { flashing[p.mac] = true; scheduleRefresh(); }
  }

  function concerns(mac) {
    var detail = document.getElementById("identity");
    return !detail || detail.getAttribute("data-mac") === mac;
  }

  function startStream() {
    if (!window.EventSource || !document.querySelector("[data-sse], #identity, #counts, [data-activity]")) return;
    var badge = document.getElementById("live");
    var es = new EventSource("/events/machines");
    es.onopen = function () { if (badge) { badge.hidden = false; badge.className = "live"; badge.textContent = "live"; } };
    es.onerror = function () { if (badge) { badge.className = "live off"; badge.textContent = "reconnecting"; } };
    es.addEventListener("progress", function (e) { try { onProgress(JSON.parse(e.data)); } catch (x) {} });
    ["machine", "machine-deleted"].forEach(function (kind) {
      es.addEventListener(kind, function (e) {
        var m = {};
        try { m = JSON.parse(e.data); } catch (x) {}
        if (concerns(m.mac)) scheduleRefresh();
      });
    });
    // Anything recorded in the event log: pages listing activity re-render those parts.
    es.addEventListener("activity", function () { if (document.querySelector("[data-activity]")) scheduleRefresh(); });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // Uploads: stream the file with a PUT (no multipart, no size limit from form encoding).
  function setupUploads() {
    document.querySelectorAll("form[data-upload]").forEach(function (form) {
      var btn = form.querySelector("[data-needs-js]");
      if (btn) btn.disabled = false;
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var file = form.querySelector("input[type=file]").files[0];
        if (!file) return;
        var name = (form.querySelector("input[name=name]").value || file.name).trim();
        var bar = form.querySelector("[data-bar]"), status = form.querySelector("[data-status]");
        var xhr = new XMLHttpRequest();
        xhr.open("PUT", form.getAttribute("data-upload") + encodeURIComponent(name));
        xhr.setRequestHeader("X-CSRF-Token", csrf);
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        bar.hidden = false; bar.value = 0; btn.disabled = true;
        status.textContent = "Uploading " + name + "…";
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) {
            bar.value = Math.floor(e.loaded * 100 / e.total);
            status.textContent = "Uploading " + name + ": " + human(e.loaded) + " of " + human(e.total);
          }
        };
        xhr.onload = function () {
          btn.disabled = false;
          if (xhr.status >= 200 && xhr.status < 300) {
            bar.value = 100;
            status.textContent = "Uploaded " + name + ".";
            setTimeout(function () { location.reload(); }, 600);
          } else {
            var msg = xhr.statusText;
            try { msg = JSON.parse(xhr.responseText).detail; } catch (x) {}
            status.textContent = "Upload failed (" + xhr.status + "): " + (typeof msg === "string" ? msg : JSON.stringify(msg));
            status.className = "field-error";
          }
        };
        xhr.onerror = function () { btn.disabled = false; status.textContent = "Upload failed: the connection was lost."; status.className = "field-error"; };
        xhr.send(file);
      });
    });
  }

  // Destructive forms: ask in place; the server asks again on its own page without JS.
  document.addEventListener("submit", function (ev) {
    var form = ev.target, q = form.getAttribute && form.getAttribute("data-confirm");
    if (!q) return;
    if (!window.confirm(q)) { ev.preventDefault(); return; }
    if (!form.querySelector("input[name=confirm]")) {
      var c = document.createElement("input");
      c.type = "hidden"; c.name = "confirm"; c.value = "yes";
      form.appendChild(c);
    }
  });

  function setupCopy() {
    document.querySelectorAll("pre[data-copy]").forEach(function (pre) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "copy"; b.textContent = "copy";
      b.addEventListener("click", function () {
        var text = pre.firstChild.textContent;
        var done = function () { b.textContent = "copied"; setTimeout(function () { b.textContent = "copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
        var r = document.createRange(); r.selectNodeContents(pre.firstChild);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (x) {}
      });
      pre.appendChild(b);
    });
  }

  startStream();
  setupPolling();
  setupUploads();
  setupCopy();
})();
