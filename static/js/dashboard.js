// Usage Statistics page: charts from the server's data, metric switch, refresh, filter bar.
// The numbers are rendered by Django; this file only draws them and fetches fresh ones.
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  const source = document.getElementById("dashboard-data");
  if (!root || !source || typeof Chart === "undefined") return;

  const exact = new Intl.NumberFormat("en-US");
  const inK = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const state = { data: JSON.parse(source.textContent), metric: "total", trend: null, distribution: null };

  const wholeK = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  function kTokens(value) {
    return inK.format(value / 1000) + "K";
  }

  // Axis ticks are round numbers: no ".0" on them once they reach 10K.
  function tickK(value) {
    return value >= 10000 ? wholeK.format(value / 1000) + "K" : kTokens(value);
  }

  // Cost is offered for daily buckets in a single currency only (the server leaves it out otherwise).
  function costAvailable() {
    return Boolean(state.data.trend.cost_currency);
  }

  // Buckets after "now" have no usage yet, which is not zero usage: they are not drawn (null).
  function metricValues(set, metric) {
    // Cost amounts arrive as exact decimal strings; the chart needs numbers to plot them.
    const values = metric === "cost" ? (set.cost || []).map(Number) : set[metric];
    const future = state.data.trend.future_index;
    return future === null || future === undefined ? values : values.map((v, i) => (i >= future ? null : v));
  }

  // The segment into the bucket in progress is dashed: its number is still growing.
  const inProgress = (ctx) => (ctx.p1DataIndex === state.data.trend.current_index ? [6, 4] : undefined);

  // Each dataset carries total/input/output (and cost); the switch only picks which one is drawn.
  function trendDatasets() {
    return state.data.trend.datasets.map((set) => ({
      label: set.label,
      data: metricValues(set, state.metric),
      total: set.total,
      input: set.input,
      output: set.output,
      cost: set.cost,
      borderColor: set.borderColor,
      backgroundColor: set.backgroundColor,
      borderWidth: 2,
      // Monotone curves never overshoot: a line never suggests usage that did not happen.
      cubicInterpolationMode: "monotone",
      segment: { borderDash: inProgress },
      pointRadius: state.data.trend.labels.length > 40 ? 0 : 2,
      pointHoverRadius: 4,
    }));
  }

  function trendTooltip(item) {
    if (state.metric === "cost") {
      const amount = item.dataset.cost[item.dataIndex];
      return `${item.dataset.label}: ${amount} ${state.data.trend.cost_currency}`;
    }
    return `${item.dataset.label}: ${exact.format(item.raw)} tokens`;
  }

  function drawTrend() {
    const canvas = document.getElementById("trend-chart");
    if (state.trend) state.trend.destroy();
    state.trend = new Chart(canvas, {
      type: "line",
      data: { labels: state.data.trend.labels, datasets: trendDatasets() },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, ticks: { callback: (value) => (state.metric === "cost" ? money.format(value) : tickK(value)) } },
          x: { ticks: { autoSkip: true, maxRotation: 0 } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            // With 20 models the tooltip lists only the models used in that bucket, largest first.
            filter: (item) => item.raw > 0,
            itemSort: (a, b) => b.raw - a.raw,
            callbacks: { label: trendTooltip },
          },
        },
      },
    });
  }

  function drawDistribution() {
    const canvas = document.getElementById("distribution-chart");
    if (state.distribution) state.distribution.destroy();
    const rows = state.data.distribution;
    state.distribution = new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: rows.map((row) => row.model),
        datasets: [{ data: rows.map((row) => row.tokens), backgroundColor: rows.map((row) => row.color) }],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => `${exact.format(item.raw)} tokens (${rows[item.dataIndex].share.toFixed(1)}%)`,
            },
          },
        },
        // A click on a slice filters the page by its model, like a click on its table row.
        onClick: (_event, elements) => {
          if (elements.length) window.location.assign(rows[elements[0].index].url);
        },
        onHover: (event, elements) => {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
  }

  function render() {
    root.dataset.empty = String(state.data.empty);
    document.getElementById("trend-bucket").textContent = "by " + state.data.trend.bucket;
    document.getElementById("trend-note").textContent = state.data.trend.progress_note || "";
    drawTrend();
    drawDistribution();
    root.dataset.rendered = String(Date.now());
  }

  function setMetric(metric) {
    const costButton = document.querySelector('.metric-switch button[data-metric="cost"]');
    if (costButton) costButton.hidden = !costAvailable();
    if (metric === "cost" && !costAvailable()) metric = "total";
    state.metric = metric;
    document.querySelectorAll(".metric-switch button").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.metric === metric));
    });
    state.trend.data.datasets.forEach((set) => {
      set.data = metricValues(set, metric);
    });
    state.trend.update();
    root.dataset.metric = metric;
  }

  async function refresh() {
    const button = document.getElementById("refresh");
    button.disabled = true;
    button.classList.add("is-loading");
    root.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(button.dataset.url + window.location.search, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      document.getElementById("cards").innerHTML = data.html.cards;
      document.getElementById("distribution-table").innerHTML = data.html.distribution;
      state.data = data;
      render();
      setMetric(state.metric);
      document.getElementById("updated-at").innerHTML =
        `Updated <time datetime="${data.updated_at}">${data.updated_display}</time>`;
    } catch (error) {
      document.getElementById("updated-at").textContent = "Refresh failed, try again";
    } finally {
      button.disabled = false;
      button.classList.remove("is-loading");
      root.setAttribute("aria-busy", "false");
    }
  }

  // Filter bar: a choice made with the pointer reloads with it in the URL (views stay shareable).
  // A keyboard user steps through options with the arrow keys: nothing navigates until Apply, or
  // until focus leaves the control that changed (WCAG 3.2.2, on input).
  function wireFilters() {
    const form = document.getElementById("filters");
    const preset = form.elements.preset;
    const custom = document.getElementById("custom-range");
    const apply = document.getElementById("apply");
    let keyboard = false;
    const pending = new Set();
    const submit = () => form.requestSubmit();
    const markPending = (control) => {
      pending.add(control);
      apply.classList.add("is-pending");
      apply.setAttribute("aria-describedby", "apply-hint");
      document.getElementById("apply-hint").hidden = false;
    };
    form.addEventListener("keydown", (event) => {
      if (event.key !== "Tab") keyboard = true;
    });
    form.addEventListener("pointerdown", () => {
      keyboard = false;
    });
    const onChange = (control, beforeSubmit) => {
      control.addEventListener("change", () => {
        if (beforeSubmit && beforeSubmit() === false) return;
        if (keyboard) markPending(control);
        else submit();
      });
      control.addEventListener("blur", () => {
        if (pending.has(control) && !(control === preset && preset.value === "custom")) submit();
      });
    };
    onChange(form.elements.api_key);
    onChange(form.elements.model);
    onChange(preset, () => {
      if (preset.value === "custom") {
        custom.hidden = false;
        if (!keyboard) form.elements.start.focus();
        return false;
      }
      custom.hidden = true;
      form.elements.start.value = "";
      form.elements.end.value = "";
      return true;
    });
    // Drop empty fields so the URL carries only what was chosen.
    form.addEventListener("formdata", (event) => {
      for (const [name, value] of [...event.formData.entries()]) {
        if (value === "") event.formData.delete(name);
      }
    });
  }

  document.querySelectorAll(".metric-switch button").forEach((button) => {
    button.addEventListener("click", () => setMetric(button.dataset.metric));
  });
  document.getElementById("refresh").addEventListener("click", refresh);
  wireFilters();
  render();
  root.dataset.metric = state.metric;
})();
