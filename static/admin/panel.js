// The admin panel's one script (no library): bar charts drawn as SVG, the overview refreshed every few
// seconds from /admin/panel/live, and the new key's Copy button. Loaded with `defer`; no inline script runs.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 5000;

  function node(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    if (parent) parent.appendChild(el);
    return el;
  }

  function number(n) {
    return n.toLocaleString("en-US");
  }

  // Stacked bars: one per label, each stack {name, cls, values} drawn from the bottom up.
  function bars(svg, labels, stacks, unit) {
    const box = svg.viewBox.baseVal;
    const left = 44, bottom = 20, top = 8, width = box.width - left, height = box.height - bottom - top;
    const totals = labels.map((_, i) => stacks.reduce((sum, s) => sum + s.values[i], 0));
    const max = Math.max(1, ...totals);
    const step = width / Math.max(1, labels.length);
    svg.replaceChildren();
    node("line", {x1: left, y1: top + height, x2: box.width, y2: top + height, class: "axis"}, svg);
    node("text", {x: left - 6, y: top + 10, "text-anchor": "end"}, svg).textContent = number(max);
    node("text", {x: left - 6, y: top + height, "text-anchor": "end"}, svg).textContent = "0";
    if (labels.length) {
      node("text", {x: left, y: box.height - 4}, svg).textContent = labels[0];
      node("text", {x: box.width, y: box.height - 4, "text-anchor": "end"}, svg).textContent = labels[labels.length - 1];
    }
    labels.forEach((label, i) => {
      let y = top + height;
      const parts = [];
      for (const stack of stacks) {
        const value = stack.values[i];
        if (!value) continue;
        const h = Math.max(1, (value / max) * height);
        y -= h;
        node("rect", {x: left + i * step + 0.5, y: y, width: Math.max(1, step - 1), height: h, class: stack.cls}, svg);
        parts.push(`${number(value)} ${stack.name}`);
      }
      if (parts.length) {  // a hover title over the whole column
        const hit = node("rect", {x: left + i * step, y: top, width: step, height: height, "fill-opacity": 0}, svg);
        node("title", {}, hit).textContent = `${label}: ${parts.join(", ")}${unit ? " " + unit : ""}`;
      }
    });
    return totals.reduce((a, b) => a + b, 0);
  }

  function drawMinutes(svg, series, start) {
    const labels = series.requests.map((_, i) => new Date(start + i * 60000).toISOString().slice(11, 16));
    const ok = series.requests.map((n, i) => Math.max(0, n - series.errors[i]));
    const requests = bars(svg, labels, [
      {name: "succeeded", cls: "bar", values: ok},
      {name: "failed", cls: "bar-error", values: series.errors},
    ], "");
    const errors = series.errors.reduce((a, b) => a + b, 0);
    svg.setAttribute("aria-label", `Last hour, a minute a bar (UTC): ${number(requests)} requests, ${number(errors)} errors`);
  }

  function renderOverview(root, data) {
    root.querySelectorAll("[data-top]").forEach((el) => { el.textContent = String(data[el.dataset.top]); });
    for (const provider of data.providers) {
      const card = root.querySelector(`[data-provider="${CSS.escape(provider.id)}"]`);
      if (!card) continue;
      card.dataset.state = provider.state;
      card.querySelectorAll("[data-field]").forEach((el) => { el.textContent = provider.show[el.dataset.field]; });
      drawMinutes(card.querySelector("svg[data-minutes]"), provider.series, data.seriesStart);
    }
  }

  function refreshOverview(root) {
    const status = document.getElementById("refresh-status");
    async function tick() {
      try {
        const response = await fetch(root.dataset.live, {headers: {Accept: "application/json"}, cache: "no-store",
                                                         credentials: "same-origin"});
        if (response.status === 401) {  // the session ended: show the sign-in page
          window.location.reload();
          return;
        }
        if (!response.ok) throw new Error(`the gateway answered ${response.status}`);
        renderOverview(root, await response.json());
        status.textContent = "";
      } catch (error) {
        status.textContent = `(could not refresh: ${error.message}; trying again)`;
      }
      window.setTimeout(tick, REFRESH_MS);
    }
    window.setTimeout(tick, REFRESH_MS);
  }

  function drawUsage(data) {
    const groups = data.groups.map((g, i) => ({...g, cls: `c${i % 8}`}));
    for (const kind of ["requests", "tokens"]) {
      const svg = document.querySelector(`svg[data-usage="${kind}"]`);
      bars(svg, data.days, groups.map((g) => ({name: g.name, cls: g.cls, values: g[kind]})), kind);
    }
    const legend = document.getElementById("usage-legend");
    for (const group of groups) {
      const item = document.createElement("li");
      node("rect", {width: 10, height: 10, class: group.cls}, node("svg", {viewBox: "0 0 10 10", "aria-hidden": "true"}, item));
      item.append(group.name);
      legend.appendChild(item);
    }
  }

  async function copy(button) {
    const input = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.copyStatus);
    let copied = false;
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch (error) {  // no clipboard API (plain http on another host): the selection and the old command
      input.select();
      copied = document.execCommand("copy");
    }
    status.textContent = copied ? "Copied to the clipboard." : "Could not copy: select the key and copy it by hand.";
  }

  function json(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const overview = document.getElementById("overview");
    const data = json("overview-data");
    if (overview && data) {
      renderOverview(overview, data);
      refreshOverview(overview);
    }
    const usage = json("usage-data");
    if (usage) drawUsage(usage);
    document.querySelectorAll("button[data-copy]").forEach((button) => {
      button.addEventListener("click", () => copy(button));
    });
  });
})();
