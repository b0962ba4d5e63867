// Usage Statistics page: charts from the server's data, metric switch, refresh (the filter bar: filters.js).
// The numbers are rendered by Django; this file only draws them and fetches fresh ones.
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  const source = document.getElementById("dashboard-data");
  if (!root || !source || typeof Chart === "undefined") return;

  const exact = new Intl.NumberFormat("en-US");
  const inK = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const state = {
    data: JSON.parse(source.textContent),
    metric: "total",
    view: "lines",
    top: null, // null: the default for the number of models (see topDefault)
    trend: null,
    distribution: null,
  };
  const OTHER_COLOR = "#6b7280";

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

  // Sum of exact decimal strings ("1.25" + "0.5" = "1.75") without binary rounding.
  function addDecimals(values) {
    const places = Math.max(0, ...values.map((v) => (String(v).split(".")[1] || "").length));
    const scale = 10n ** BigInt(places);
    let sum = 0n;
    for (const value of values) {
      const [whole, fraction = ""] = String(value).replace("-", "").split(".");
      const units = BigInt(whole || "0") * scale + BigInt((fraction + "0".repeat(places)).slice(0, places) || "0");
      sum += String(value).startsWith("-") ? -units : units;
    }
    const text = (sum < 0n ? -sum : sum).toString().padStart(places + 1, "0");
    const sign = sum < 0n ? "-" : "";
    return places ? `${sign}${text.slice(0, -places)}.${text.slice(-places)}` : sign + text;
  }

  // The figure shown for an exact decimal string, by the server's rule (usage/reporting/money.py):
  // half-even to the currency's minor digits; not zero and below ten minor units, three
  // significant digits ("0.0139", never "0.00"). Trailing zeros beyond the minor digits go.
  function moneyText(value, minorDigits) {
    const text = String(value);
    const negative = text.startsWith("-");
    const [whole, fraction = ""] = text.replace("-", "").split(".");
    const places = fraction.length;
    const units = BigInt(whole + fraction || "0");
    let target = minorDigits;
    if (units !== 0n && units * 10n ** BigInt(minorDigits) < 10n ** BigInt(places + 1)) {
      target = places - units.toString().length + 3; // three significant digits
    }
    let rounded = units * 10n ** BigInt(Math.max(0, target - places));
    if (target < places) {
      const divisor = 10n ** BigInt(places - target);
      const rest = units % divisor;
      rounded = units / divisor;
      if (2n * rest > divisor || (2n * rest === divisor && rounded % 2n === 1n)) rounded += 1n;
    }
    let digits = rounded.toString().padStart(target + 1, "0");
    let shownPlaces = target;
    while (shownPlaces > minorDigits && digits.endsWith("0")) {
      digits = digits.slice(0, -1);
      shownPlaces -= 1;
    }
    const integer = shownPlaces ? digits.slice(0, -shownPlaces) : digits;
    const grouped = integer.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const sign = negative && rounded !== 0n ? "-" : "";
    return sign + (shownPlaces ? `${grouped}.${digits.slice(-shownPlaces)}` : grouped);
  }

  // With many models the page shows the busiest N and one "Other" series of the rest (the
  // datasets arrive busiest first), so lines stay readable and the sum stays the total.
  function topDefault() {
    return state.data.trend.datasets.length > 9 ? 8 : Infinity;
  }

  function topCount() {
    return state.top === null ? topDefault() : state.top;
  }

  function shownSets() {
    const sets = state.data.trend.datasets;
    const count = topCount();
    if (sets.length <= count) return sets;
    const rest = sets.slice(count);
    const sum = (key) => rest[0][key].map((_value, index) => rest.reduce((total, set) => total + set[key][index], 0));
    const other = {
      label: `Other (${rest.length} models)`,
      other: true,
      total: sum("total"),
      input: sum("input"),
      output: sum("output"),
      borderColor: OTHER_COLOR,
      backgroundColor: OTHER_COLOR,
    };
    if (rest[0].cost) other.cost = rest[0].cost.map((_value, index) => addDecimals(rest.map((set) => set.cost[index])));
    return [...sets.slice(0, count), other];
  }

  function barColors(color) {
    const current = state.data.trend.current_index;
    if (current === null || current === undefined || !/^#[0-9a-f]{6}$/i.test(color)) return color;
    return state.data.trend.labels.map((_label, index) => (index === current ? color + "66" : color));
  }

  function progressNote() {
    const note = state.data.trend.progress_note || "";
    return state.view === "bars" ? note.replace("The dashed part is", "The lighter bar is") : note;
  }

  // Each dataset carries total/input/output (and cost); the switch only picks which one is drawn.
  function trendDatasets() {
    const bars = state.view === "bars";
    return shownSets().map((set) => ({
      label: set.label,
      data: metricValues(set, state.metric),
      total: set.total,
      input: set.input,
      output: set.output,
      cost: set.cost,
      borderColor: set.borderColor,
      // Bars: the bucket in progress is drawn lighter (lines dash it).
      backgroundColor: bars ? barColors(set.backgroundColor) : set.backgroundColor,
      borderWidth: bars ? 0 : 2,
      borderDash: set.other ? [2, 2] : undefined,
      // Monotone curves never overshoot: a line never suggests usage that did not happen.
      cubicInterpolationMode: "monotone",
      segment: bars ? undefined : { borderDash: inProgress },
      pointRadius: state.data.trend.labels.length > 40 ? 0 : 2,
      pointHoverRadius: 4,
    }));
  }

  // The trend as a table, for screen readers and anyone who wants the numbers (same sets as drawn).
  function renderTrendTable() {
    const holder = document.getElementById("trend-table");
    if (!holder) return;
    const trend = state.data.trend;
    const sets = shownSets();
    const metric = state.metric;
    const unit = metric === "cost" ? trend.cost_currency : "tokens";
    const future = trend.future_index ?? trend.labels.length;
    const cell = (set, index) =>
      metric === "cost" ? moneyText(set.cost[index], trend.cost_minor_digits) : exact.format(set[metric][index]);
    const head = sets.map((set) => `<th scope="col" class="num">${escapeHtml(set.label)}</th>`).join("");
    const rows = trend.labels
      .slice(0, future)
      .map((label, index) => {
        const cells = sets.map((set) => `<td class="num">${cell(set, index)}</td>`).join("");
        const mark = index === trend.current_index ? " (in progress)" : "";
        return `<tr><th scope="row">${escapeHtml(label)}${mark}</th>${cells}</tr>`;
      })
      .join("");
    holder.innerHTML =
      `<table class="table trend-table"><caption>${escapeHtml(metricName(metric))} per ${trend.bucket}, in ${unit}</caption>` +
      `<thead><tr><th scope="col">${trend.bucket === "hour" ? "Hour" : "Day"}</th>${head}</tr></thead><tbody>${rows}</tbody></table>`;
  }

  function metricName(metric) {
    return { total: "Total tokens", input: "Input tokens", output: "Output tokens", cost: "Estimated cost" }[metric];
  }

  function escapeHtml(text) {
    const span = document.createElement("span");
    span.textContent = text;
    return span.innerHTML;
  }

  function trendTooltip(item) {
    if (state.metric === "cost") {
      const amount = moneyText(item.dataset.cost[item.dataIndex], state.data.trend.cost_minor_digits);
      return `${item.dataset.label}: ${amount} ${state.data.trend.cost_currency}`;
    }
    return `${item.dataset.label}: ${exact.format(item.raw)} tokens`;
  }

  // The tooltip's footer: the bucket's total over every model (not only the N drawn).
  function trendFooter(items) {
    if (!items.length) return "";
    const index = items[0].dataIndex;
    const sets = state.data.trend.datasets;
    if (state.metric === "cost") {
      const total = addDecimals(sets.map((set) => set.cost[index]));
      return `Total: ${moneyText(total, state.data.trend.cost_minor_digits)} ${state.data.trend.cost_currency}`;
    }
    return `Total: ${exact.format(sets.reduce((sum, set) => sum + set[state.metric][index], 0))} tokens`;
  }

  function yTick(value) {
    return state.metric === "cost" ? `${money.format(value)} ${state.data.trend.cost_currency}` : tickK(value);
  }

  function drawTrend() {
    const canvas = document.getElementById("trend-chart");
    if (state.trend) state.trend.destroy();
    const bars = state.view === "bars";
    state.trend = new Chart(canvas, {
      type: bars ? "bar" : "line",
      data: { labels: state.data.trend.labels, datasets: trendDatasets() },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, stacked: bars, ticks: { callback: yTick } },
          x: { stacked: bars, ticks: { autoSkip: true, maxRotation: 0 } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            // With 20 models the tooltip lists only the models used in that bucket, largest first.
            filter: (item) => item.raw > 0,
            itemSort: (a, b) => b.raw - a.raw,
            callbacks: { label: trendTooltip, footer: trendFooter },
          },
        },
      },
    });
  }

  function drawDistribution() {
    const canvas = document.getElementById("distribution-chart");
    if (state.distribution) state.distribution.destroy();
    const rows = distributionRows();
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
          const row = elements.length ? rows[elements[0].index] : null;
          if (row && row.url) window.location.assign(row.url);
        },
        onHover: (event, elements) => {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
  }

  // The doughnut: the same top N as the trend, the rest in one "Other" slice.
  function distributionRows() {
    const rows = state.data.distribution;
    const count = topCount();
    if (rows.length <= count) return rows;
    const rest = rows.slice(count);
    const all = rows.reduce((sum, row) => sum + row.tokens, 0);
    const tokens = rest.reduce((sum, row) => sum + row.tokens, 0);
    const other = { model: `Other (${rest.length} models)`, tokens, color: OTHER_COLOR, url: null };
    other.share = all ? (tokens / all) * 100 : 0;
    return [...rows.slice(0, count), other];
  }

  // A table wider than the phone says it scrolls (caption cue, edge shadow).
  function markScrollable() {
    const table = document.querySelector(".distribution-table");
    if (table) table.classList.toggle("is-scrollable", table.scrollWidth > table.clientWidth + 1);
  }

  function render() {
    root.dataset.empty = String(state.data.empty);
    document.getElementById("trend-bucket").textContent = "by " + state.data.trend.bucket;
    document.getElementById("trend-note").textContent = progressNote();
    drawTrend();
    drawDistribution();
    renderTrendTable();
    wireTop();
    markScrollable();
    root.dataset.rendered = String(Date.now());
  }

  function setMetric(metric) {
    const costButton = document.querySelector('.metric-switch button[data-metric="cost"]');
    if (costButton) costButton.hidden = !costAvailable();
    if (metric === "cost" && !costAvailable()) metric = "total";
    state.metric = metric;
    document.querySelectorAll(".metric-switch button[data-metric]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.metric === metric));
    });
    state.trend.data.datasets.forEach((set) => {
      set.data = metricValues(set, metric);
    });
    state.trend.update();
    root.dataset.metric = metric;
    renderTrendTable();
  }

  // "Models" select: offered when there are more models than the smallest N.
  function wireTop() {
    const select = document.getElementById("top-n");
    if (!select) return;
    const count = state.data.trend.datasets.length;
    select.closest(".field").hidden = count <= 5;
    select.value = topCount() === Infinity ? "all" : String(topCount());
  }

  function setView(view) {
    state.view = view;
    document.querySelectorAll(".view-switch button").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.view === view));
    });
    drawTrend();
    document.getElementById("trend-note").textContent = progressNote();
    root.dataset.view = view;
  }

  function sessionEnded(loginUrl) {
    const box = document.getElementById("updated-at");
    box.textContent = "Your session has ended. ";
    const link = document.createElement("a");
    link.href = loginUrl;
    link.textContent = "Log in again";
    box.append(link);
    root.dataset.session = "ended";
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
      // A session that ended (logout, expiry, another tab) is sent to the login page: say so.
      const type = response.headers.get("Content-Type") || "";
      if (response.status === 401 || response.status === 403 || (response.ok && !type.includes("json"))) {
        sessionEnded(button.dataset.loginUrl);
        return;
      }
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

  document.querySelectorAll(".metric-switch button[data-metric]").forEach((button) => {
    button.addEventListener("click", () => setMetric(button.dataset.metric));
  });
  document.querySelectorAll(".view-switch button").forEach((button) => {
    button.addEventListener("click", () => setView(button.dataset.view));
  });
  document.getElementById("top-n").addEventListener("change", (event) => {
    state.top = event.target.value === "all" ? Infinity : Number(event.target.value);
    drawTrend();
    drawDistribution();
    renderTrendTable();
  });
  document.getElementById("refresh").addEventListener("click", refresh);
  // Optional auto-refresh: off by default; every 60 s while the tab is visible, and on return to it.
  const AUTO_REFRESH_MS = 60000;
  let autoTimer = null;
  const autoBox = document.getElementById("auto-refresh");
  const autoTick = () => {
    if (document.visibilityState === "visible" && root.dataset.session !== "ended") refresh();
  };
  autoBox.addEventListener("change", () => {
    clearInterval(autoTimer);
    autoTimer = autoBox.checked ? setInterval(autoTick, AUTO_REFRESH_MS) : null;
    root.dataset.autoRefresh = String(autoBox.checked);
  });
  document.addEventListener("visibilitychange", () => {
    if (autoBox.checked && document.visibilityState === "visible") autoTick();
  });
  window.addEventListener("resize", markScrollable);
  render();
  root.dataset.metric = state.metric;
})();
