// QIKI web console (issue 14 part 6): plain JS, no build step, no CDN.
// Speaks docs/console-protocol.md (v1) over the gateway's /ws on the page's own origin.
// The token, when the gateway needs one, is the page's ?token= query parameter.
"use strict";

(function () {
  const STALE_AFTER_S = 0.5;        // a value older than this is drawn grey
  const HOLD_MS = 1000;             // arm: press and hold >= 1 s (the gateway's minimum)
  const HEARTBEAT_MS = 50;          // while holding control: >= 5 Hz asked; 20 Hz leaves slack
  const TTL_MS = 500;               // command time-to-live
  const PLOT_S = 30;                // plot window
  const TRAIL_N = 2000;

  const $ = (id) => document.getElementById(id);
  const st = {
    ws: null, welcome: null, youHold: false, tel: null, lastRx: null,
    trail: [], plots: { err: [], thrust: [], soc: [] }, history: [], nextId: 1, hbSeq: 0,
    hold: null,
  };
  window.qiki = st;  // for tests and the curious

  // ------------------------------------------------------------------ link
  function wsUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams(location.search);
    const token = q.get("token");
    const ws = q.get("ws");
    let url = ws || `${proto}//${location.host}/ws`;
    if (token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    return url;
  }

  function connect() {
    let ws;
    try { ws = new WebSocket(wsUrl()); } catch (e) { $("conn-error").textContent = String(e); return; }
    st.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      $("conn-error").textContent = "";
      ws.send(JSON.stringify({ type: "hello", v: 1, client: "web" }));
    };
    ws.onmessage = (ev) => {
      st.lastRx = performance.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      onMessage(msg);
    };
    ws.onclose = (ev) => {
      st.ws = null; st.youHold = false;
      document.body.dataset.connected = "false";
      const why = ev.code === 4401 ? "refused: wrong or missing token (4401)"
        : ev.code === 4403 ? "refused: origin not allowed (4403)"
        : !opened ? `cannot connect to ${wsUrl().split("?")[0]} (${ev.code}): gateway down, or the handshake was refused`
        : `link closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`;
      $("conn-error").textContent = why;
      document.body.dataset.closeCode = String(ev.code);
      if (ev.code !== 4401 && ev.code !== 4403) setTimeout(connect, 1000);
    };
  }

  function send(obj) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) { st.ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function command(name, holdMs) {
    const rec = { id: "w-" + st.nextId++, name, status: "sent", reason: "", code: null };
    const msg = { type: "command", v: 1, id: rec.id, name, ttl_ms: TTL_MS };
    if (holdMs !== undefined) msg.confirm = { hold_ms: Math.round(holdMs) };
    if (!send(msg)) { rec.status = "refused"; rec.reason = "not connected"; }
    st.history.unshift(rec);
    st.history.length = Math.min(st.history.length, 100);
    drawHistory();
    return rec;
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "welcome":
        st.welcome = msg;
        document.body.dataset.connected = "true";
        $("role").textContent = msg.role === "observer" ? "observer (read-only)" : "";
        break;
      case "control":
        st.youHold = !!msg.you_hold;
        $("holder").textContent = msg.holder || "nobody";
        break;
      case "telemetry":
        st.tel = msg;
        onTelemetry(msg);
        break;
      case "reply": {
        const rec = st.history.find((r) => r.id === msg.id);
        if (rec) { rec.status = msg.status; rec.reason = msg.reason || ""; rec.code = msg.code; }
        drawHistory();
        break;
      }
      default: break;
    }
  }

  setInterval(() => { if (st.youHold) send({ type: "heartbeat", v: 1, seq: st.hbSeq++ }); }, HEARTBEAT_MS);

  // ------------------------------------------------------------------ telemetry
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function fmt(v, d) { return v === null || v === undefined ? "-" : (typeof v === "number" ? v.toFixed(d === undefined ? 2 : d) : String(v)); }
  function stale(age) { return age === null || age === undefined || age > STALE_AFTER_S; }
  function push(arr, t, v) { if (v === null) return; arr.push([t, v]); while (arr.length && arr[0][0] < t - PLOT_S) arr.shift(); }

  function onTelemetry(m) {
    document.body.dataset.state = m.state;
    if (m.pose) {
      st.trail.push([m.pose.x_m, m.pose.y_m]);
      if (st.trail.length > TRAIL_N) st.trail.shift();
    }
    const t = m.t_s;
    const sp = m.setpoint;
    if (m.pose && sp && num(sp.x_m) !== null) push(st.plots.err, t, Math.hypot(m.pose.x_m - sp.x_m, m.pose.y_m - sp.y_m));
    push(st.plots.thrust, t, (m.thrust_n || []).reduce((a, b) => a + b, 0));
    const values = (m.power && m.power.values) || {};
    push(st.plots.soc, t, num(values.soc_pct));
    if (st.plots.err.length && st.plots.err[st.plots.err.length - 1][0] > t) { st.plots = { err: [], thrust: [], soc: [] }; }
  }

  function draw() {
    const m = st.tel;
    const linkAge = st.lastRx === null ? null : (performance.now() - st.lastRx) / 1000;
    const up = !!st.ws && st.ws.readyState === WebSocket.OPEN;
    $("link").textContent = up ? fmt(linkAge, 2) + " s" : "down";
    $("link").className = !up || stale(linkAge) ? "error" : "";
    const observer = st.welcome && st.welcome.role === "observer";
    for (const id of ["request-control", "take-control", "release-control", "arm", "disarm", "reset", "mission-start", "mission-abort"]) {
      $(id).disabled = !up || observer;
    }
    $("estop").disabled = false;  // always
    $("release-control").disabled = !up || !st.youHold;
    $("you-hold").textContent = st.youHold ? "(you)" : "";
    drawHold();
    if (!m) return;
    const stateEl = $("state");
    stateEl.textContent = m.state;
    stateEl.className = "badge " + m.state + (up ? "" : " stale");
    $("time-in-state").textContent = fmt(m.time_in_state_s, 1);
    $("armed").textContent = m.armed ? "ARMED" : "safe";
    $("armed").className = m.armed ? "armed-yes" : "armed-no";
    $("holder").textContent = m.control_holder || "nobody";
    $("rec").textContent = m.recording ? "REC" : "no rec";
    $("rec").className = m.recording ? "error" : "stale";
    $("t").textContent = fmt(m.t_s, 2);
    const sp = m.setpoint;
    $("waypoints").textContent = sp ? `${sp.waypoints_reached}/${sp.waypoints_total}` : "-";
    $("arm-ready").textContent = m.arm_ready ? "(ready)" : "(not ready)";
    $("arm-ready").className = m.arm_ready ? "" : "error";
    // arming checks with the reason each fails
    const checks = $("checks");
    checks.replaceChildren(...(m.arming_checks || []).map((c) => {
      const li = document.createElement("li");
      li.className = c.ok ? "ok" : "fail";
      li.dataset.name = c.name;
      li.textContent = (c.ok ? "ok  " : "NO  ") + c.name + (c.ok ? "" : ": " + c.reason);
      return li;
    }));
    const faults = $("faults");
    const items = (m.faults_active || []).map((f) => {
      const li = document.createElement("li");
      li.className = "fail";
      li.textContent = `ACTIVE [${f.code}] ${f.key}: ${f.reason}`;
      return li;
    });
    for (const k of m.faults_latched || []) {
      if ((m.faults_active || []).some((f) => f.key === k)) continue;
      const li = document.createElement("li"); li.className = "latched"; li.textContent = "latched " + k; items.push(li);
    }
    if (m.last_refusal) {
      const li = document.createElement("li"); li.className = "latched";
      li.textContent = `last refusal: ${m.last_refusal[0]}: ${m.last_refusal[1]}`; items.push(li);
    }
    if (!items.length) { const li = document.createElement("li"); li.className = "ok"; li.textContent = "none"; items.push(li); }
    faults.replaceChildren(...items);
    const pw = m.power;
    $("power-age").textContent = pw ? fmt(pw.age_s, 1) : "-";
    const rows = pw ? Object.entries(pw.values) : [];
    $("power").replaceChildren(...rows.map(([k, v]) => {
      const tr = document.createElement("tr");
      const a = document.createElement("td"); a.textContent = k;
      const b = document.createElement("td"); b.textContent = typeof v === "number" ? fmt(v, 2) : String(v);
      if (!up || stale(pw.age_s)) b.className = "stale";
      tr.append(a, b); return tr;
    }));
    $("thrust").textContent = (m.thrust_n || []).map((x) => x.toFixed(2)).join(" ");
    drawMap(m, up);
    drawPlot($("plot-err"), st.plots.err, "#4fc3f7");
    drawPlot($("plot-thrust"), st.plots.thrust, "#ffb000");
    drawPlot($("plot-soc"), st.plots.soc, "#6c6");
  }

  function drawHistory() {
    $("history").replaceChildren(...st.history.slice(0, 30).map((r) => {
      const li = document.createElement("li");
      li.className = r.status;
      li.dataset.name = r.name; li.dataset.status = r.status;
      li.textContent = `${r.name} ${r.status}${r.code !== null && r.code !== undefined ? " [" + r.code + "]" : ""}${r.reason ? ": " + r.reason : ""}`;
      return li;
    }));
  }

  // ------------------------------------------------------------------ map and plots
  function drawMap(m, up) {
    const cv = $("map"); const g = cv.getContext("2d");
    const W = cv.width, H = cv.height;
    g.clearRect(0, 0, W, H);
    const sp = m.setpoint;
    const wps = sp ? sp.waypoints : [];
    const pts = wps.map((w) => [w[0], w[1]]).concat(st.trail);
    if (m.pose) pts.push([m.pose.x_m, m.pose.y_m]);
    if (!pts.length) pts.push([0, 0], [1, 1]);
    const margin = 0.5;
    let x0 = Math.min(...pts.map((p) => p[0])) - margin, x1 = Math.max(...pts.map((p) => p[0])) + margin;
    let y0 = Math.min(...pts.map((p) => p[1])) - margin, y1 = Math.max(...pts.map((p) => p[1])) + margin;
    const s = Math.min(W / (x1 - x0), H / (y1 - y0));
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const X = (x) => W / 2 + (x - cx) * s, Y = (y) => H / 2 - (y - cy) * s;
    // grid 0.5 m
    g.strokeStyle = "#262c34"; g.lineWidth = 1;
    for (let gx = Math.floor((cx - W / 2 / s) / 0.5) * 0.5; gx < cx + W / 2 / s; gx += 0.5) { g.beginPath(); g.moveTo(X(gx), 0); g.lineTo(X(gx), H); g.stroke(); }
    for (let gy = Math.floor((cy - H / 2 / s) / 0.5) * 0.5; gy < cy + H / 2 / s; gy += 0.5) { g.beginPath(); g.moveTo(0, Y(gy)); g.lineTo(W, Y(gy)); g.stroke(); }
    // waypoints
    g.font = "13px sans-serif";
    wps.forEach((w, i) => {
      const reached = sp && i < sp.waypoints_reached;
      g.strokeStyle = reached ? "#6c6" : "#e3c21a"; g.fillStyle = g.strokeStyle;
      g.beginPath(); g.arc(X(w[0]), Y(w[1]), 7, 0, 2 * Math.PI); g.stroke();
      g.fillText(String(i + 1), X(w[0]) + 9, Y(w[1]) - 9);
    });
    // trail
    g.strokeStyle = "#3d7bd9"; g.lineWidth = 2; g.beginPath();
    st.trail.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
    g.stroke();
    // setpoint
    if (sp && num(sp.x_m) !== null) {
      g.strokeStyle = "#4fc3f7"; g.lineWidth = 1.5;
      g.beginPath(); g.moveTo(X(sp.x_m) - 6, Y(sp.y_m)); g.lineTo(X(sp.x_m) + 6, Y(sp.y_m));
      g.moveTo(X(sp.x_m), Y(sp.y_m) - 6); g.lineTo(X(sp.x_m), Y(sp.y_m) + 6); g.stroke();
    }
    // keep-out (when the gateway sends it)
    const ko = num(m.keep_out_radius_m);
    if (m.pose && ko) { g.strokeStyle = "#c33"; g.setLineDash([4, 4]); g.beginPath(); g.arc(X(m.pose.x_m), Y(m.pose.y_m), ko * s, 0, 2 * Math.PI); g.stroke(); g.setLineDash([]); }
    // radar tracks
    const trStale = stale(m.radar_age_s) || !up;
    for (const t of m.radar_tracks || []) {
      g.fillStyle = trStale ? "#6b7480" : "#e040fb";
      g.fillRect(X(t.x_m) - 4, Y(t.y_m) - 4, 8, 8);
      g.fillText("T" + t.id, X(t.x_m) + 6, Y(t.y_m) + 4);
    }
    // vehicle
    if (m.pose) {
      const p = m.pose, px = X(p.x_m), py = Y(p.y_m);
      g.fillStyle = !up || stale(p.age_s) ? "#6b7480" : "#4caf50";
      g.beginPath(); g.arc(px, py, 8, 0, 2 * Math.PI); g.fill();
      g.strokeStyle = "#fff"; g.lineWidth = 2; g.beginPath(); g.moveTo(px, py);
      g.lineTo(px + 14 * Math.cos(p.yaw_rad), py - 14 * Math.sin(p.yaw_rad)); g.stroke();
    }
  }

  function drawPlot(cv, data, colour) {
    const g = cv.getContext("2d"); const W = cv.width, H = cv.height;
    g.clearRect(0, 0, W, H);
    if (data.length < 2) return;
    const t1 = data[data.length - 1][0], t0 = t1 - PLOT_S;
    let lo = Math.min(...data.map((d) => d[1])), hi = Math.max(...data.map((d) => d[1]));
    if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    data.forEach((d, i) => {
      const x = ((d[0] - t0) / PLOT_S) * W, y = H - 4 - ((d[1] - lo) / (hi - lo)) * (H - 8);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
    g.fillStyle = "#8a96a3"; g.font = "10px sans-serif";
    g.fillText(hi.toFixed(2), 2, 10); g.fillText(lo.toFixed(2), 2, H - 2);
  }

  // ------------------------------------------------------------------ hold to arm
  function holdCheck() {
    // send arm once the pointer has been down >= HOLD_MS (called by the draw loop, a timer
    // at HOLD_MS, and the release itself, so a late timer on a busy page loses no hold)
    if (!st.hold || st.hold.sent) return;
    const held = performance.now() - st.hold.t0;
    if (held >= HOLD_MS) { st.hold.sent = true; command("arm", held); }
  }
  function drawHold() {
    const bar = $("arm-progress");
    if (!st.hold) { bar.style.width = "0"; return; }
    const p = Math.min(1, (performance.now() - st.hold.t0) / HOLD_MS);
    bar.style.width = (p * 100).toFixed(0) + "%";
    holdCheck();
  }
  function holdStart(ev) {
    if (ev.button !== undefined && ev.button !== 0) return;
    st.hold = { t0: performance.now(), sent: false, timer: setTimeout(holdCheck, HOLD_MS + 5) };
    if (ev.pointerId !== undefined && $("arm").setPointerCapture) $("arm").setPointerCapture(ev.pointerId);
  }
  function holdEnd() {
    holdCheck();
    if (st.hold) clearTimeout(st.hold.timer);
    st.hold = null;
    drawHold();
  }
  const arm = $("arm");
  arm.addEventListener("pointerdown", holdStart);
  arm.addEventListener("pointerup", holdEnd);
  arm.addEventListener("pointercancel", holdEnd);
  arm.addEventListener("pointerleave", holdEnd);

  // ------------------------------------------------------------------ buttons and keys
  const buttons = {
    "estop": "estop", "disarm": "disarm", "reset": "reset", "mission-start": "mission_start",
    "mission-abort": "mission_abort", "request-control": "request_control", "release-control": "release_control",
    "take-control": "take_control",
  };
  for (const [id, name] of Object.entries(buttons)) $(id).addEventListener("click", () => command(name));
  document.addEventListener("keydown", (ev) => {
    if (ev.key === " " || ev.key === "!") { ev.preventDefault(); if (!ev.repeat) command("estop"); }
  });
  // space is the E-stop key: it must not also click the focused button
  document.addEventListener("keyup", (ev) => { if (ev.key === " ") ev.preventDefault(); });

  setInterval(draw, 50);
  connect();
})();
