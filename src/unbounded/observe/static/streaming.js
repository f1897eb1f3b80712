/* unbounded UI: the Structured Streaming pages. Polls the JSON API every second and
 * redraws in place; every value goes in through textContent, never as HTML. */
"use strict";
(function () {
  const body = document.body;
  const API = body.dataset.api, QUERY_PATH = body.dataset.queryPath;
  const POLL_MS = 1000;
  const main = document.getElementById("main");

  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const k in attrs || {}) {
      if (k === "class") n.className = attrs[k]; else n.setAttribute(k, attrs[k]);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) n.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  const iso = ms => ms === null || ms === undefined ? "" : new Date(ms).toISOString();
  const num = v => v === null || v === undefined ? "" : UbCharts.fmt(v);

  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    let s = Math.floor(ms / 1000);
    const parts = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]]
      .map(([n, u]) => { const q = Math.floor(s / n); s -= q * n; return q ? q + " " + u : null; })
      .filter(Boolean);
    return parts.slice(0, 2).join(" ") || ms + " ms";
  }

  function table(id, headers, rows) {
    const head = el("tr", {}, ...headers.map(h => el("th", {}, h)));
    const tbody = el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, c)))));
    return el("table", {id, class: "grid"}, el("thead", {}, head), tbody);
  }

  function status(s) { return el("span", {class: "status " + String(s).toLowerCase()}, s); }

  // ---- the queries list -------------------------------------------------------------
  function queryRow(q) {
    const link = el("a", {href: QUERY_PATH + "/" + encodeURIComponent(q.runId)}, q.name || "<no name>");
    return [link, status(q.status), q.id, q.runId, iso(q.startMs), duration(q.durationMs),
      q.latestBatchId === null ? "" : q.latestBatchId, num(q.avgInputRowsPerSecond),
      num(q.avgProcessedRowsPerSecond), el("span", {class: "error-text"}, q.lastError || "")];
  }

  const QUERY_HEADERS = ["Name", "Status", "ID", "Run ID", "Start Time", "Duration",
    "Latest Batch", "Avg Input /sec", "Avg Process /sec", "Error"];

  function renderList(doc) {
    main.textContent = "";
    main.appendChild(el("h2", {}, `Active Streaming Queries (${doc.active.length})`));
    main.appendChild(table("active-queries", QUERY_HEADERS, doc.active.map(queryRow)));
    main.appendChild(el("h2", {}, `Completed Streaming Queries (${doc.completed.length})`));
    main.appendChild(table("completed-queries", QUERY_HEADERS, doc.completed.map(queryRow)));
  }

  // ---- one query ----------------------------------------------------------------------
  const points = (batches, key) => batches.filter(b => typeof b[key] === "number")
    .map(b => [b.batchId, b[key]]);

  function operatorSeries(batches, key) {
    const byOp = {};
    for (const b of batches) (b.stateOperators || []).forEach((op, i) => {
      const name = `${i}: ${op.operatorName || "operator"}`;
      if (typeof op[key] === "number") (byOp[name] = byOp[name] || []).push([b.batchId, op[key]]);
    });
    return Object.keys(byOp).map(name => ({name, points: byOp[name]}));
  }

  function durationSeries(batches) {
    const keys = [];
    for (const b of batches) for (const k in b.durationMs || {}) {
      if (k !== "triggerExecution" && !keys.includes(k)) keys.push(k);
    }
    return keys.map(k => ({name: k, points: batches.map(b => [b.batchId, (b.durationMs || {})[k] || 0])}));
  }

  const CHARTS = [
    ["chart-rates", "Input Rate vs Process Rate", "line", "rows/s",
      b => [{name: "input rate", points: points(b, "inputRowsPerSecond")},
            {name: "process rate", points: points(b, "processedRowsPerSecond")}]],
    ["chart-input-rows", "Input Rows", "line", "rows", b => [{name: "input rows", points: points(b, "numInputRows")}]],
    ["chart-batch-duration", "Batch Duration", "line", "ms", b => [{name: "batch duration", points: points(b, "batchDuration")}]],
    ["chart-operation-duration", "Operation Duration (stacked)", "stacked", "ms", durationSeries],
    ["chart-watermark-gap", "Global Watermark Gap", "line", "s",
      b => [{name: "watermark gap", points: points(b, "watermarkGapMs").map(([x, y]) => [x, y / 1000])}]],
    ["chart-state-rows", "State Rows per Operator", "line", "rows", b => operatorSeries(b, "numRowsTotal")],
    ["chart-state-memory", "State Memory per Operator", "line", "bytes", b => operatorSeries(b, "memoryUsedBytes")],
  ];

  function ensureQueryLayout() {
    if (document.getElementById("charts")) return;
    main.textContent = "";
    main.appendChild(el("div", {id: "summary"}));
    main.appendChild(el("pre", {id: "error", class: "error", hidden: ""}));
    const grid = el("div", {id: "charts", class: "charts"});
    for (const [id, title] of CHARTS) {
      grid.appendChild(el("section", {class: "card"}, el("h3", {}, title), el("div", {id, class: "chart-box"})));
    }
    main.appendChild(grid);
    main.appendChild(el("div", {id: "operators"}));
    main.appendChild(el("h2", {}, "Recent Batches"));
    main.appendChild(el("div", {id: "batches"}));
  }

  function renderSummary(q, detail) {
    const box = document.getElementById("summary");
    box.textContent = "";
    box.appendChild(el("h2", {}, "Streaming Query Statistics: ", el("span", {id: "query-name"}, q.name || "<no name>"), " ", status(q.status)));
    const facts = [["ID", q.id], ["Run ID", q.runId], ["Started", iso(q.startMs)],
      ["Duration", duration(q.durationMs)],
      ["Latest batch", el("span", {id: "latest-batch"}, q.latestBatchId === null ? "-" : q.latestBatchId)],
      ["Avg input /sec", num(q.avgInputRowsPerSecond)], ["Avg process /sec", num(q.avgProcessedRowsPerSecond)]];
    if (detail.checkpoint) facts.push(["Checkpoint", detail.checkpoint]);
    box.appendChild(el("dl", {class: "facts"}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }

  function renderBatches(batches) {
    const recent = batches.slice(-50).reverse();
    const hasOffsets = recent.some(b => b.offsets !== undefined);
    const headers = ["Batch", "Time", "Input Rows", "Input /sec", "Process /sec",
      "Duration (ms)", "Output Rows", "Watermark"];
    if (hasOffsets) headers.push("Committed", "Offsets");
    const rows = recent.map(b => {
      const r = [b.batchId, iso(b.timestampMs), num(b.numInputRows), num(b.inputRowsPerSecond),
        num(b.processedRowsPerSecond), num(b.batchDuration), num(b.numOutputRows), iso(b.watermarkMs)];
      if (hasOffsets) r.push(b.committed ? "yes" : "no", JSON.stringify(b.offsets));
      return r;
    });
    const box = document.getElementById("batches");
    box.textContent = "";
    box.appendChild(table("batch-table", headers, rows));
  }

  function renderOperators(ops) {
    const box = document.getElementById("operators");
    box.textContent = "";
    if (!ops.length) return;
    box.appendChild(el("h2", {}, "State Stores (from the checkpoint)"));
    box.appendChild(table("operator-table", ["Operator", "Partitions", "Stores", "Latest Version", "Bytes"],
      ops.map(o => [o.operatorId, o.numPartitions, o.stores, o.latestVersion, num(o.sizeBytes)])));
  }

  function renderQuery(detail) {
    ensureQueryLayout();
    renderSummary(detail.query, detail);
    const err = document.getElementById("error");
    if (detail.exception) { err.hidden = false; err.textContent = detail.exception; } else err.hidden = true;
    // a checkpoint keeps offsets and watermarks, not row counts or durations
    const empty = detail.query.source === "checkpoint" ? "not kept in a checkpoint" : "no data yet";
    for (const [id, , kind, unit, series] of CHARTS) {
      UbCharts[kind](document.getElementById(id), {series: series(detail.batches), unit, empty});
    }
    renderOperators(detail.operators || []);
    renderBatches(detail.batches);
  }

  // ---- polling ----------------------------------------------------------------------
  async function poll() {
    const url = body.dataset.page === "query" ? API + "/" + encodeURIComponent(body.dataset.runId) : API;
    try {
      const reply = await fetch(url, {cache: "no-store"});
      const doc = await reply.json();
      if (!reply.ok) { main.textContent = ""; main.appendChild(el("p", {class: "error"}, doc.error)); }
      else if (body.dataset.page === "query") renderQuery(doc); else renderList(doc);
      document.getElementById("updated").textContent = "updated " + new Date().toISOString();
    } catch (e) {
      document.getElementById("updated").textContent = "not reachable: " + e;
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
