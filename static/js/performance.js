// Usage Statistics, Performance view: the chosen metric per model drawn over the calls, with
// departures marked; a click on a point opens the calls behind that hour or day.
(function () {
  "use strict";

  const source = document.getElementById("performance-data");
  const canvas = document.getElementById("performance-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;

  const data = JSON.parse(source.textContent);
  const marked = {};
  for (const mark of data.departures) {
    (marked[mark.model] = marked[mark.model] || new Set()).add(mark.index);
  }
  const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  let metric = Object.keys(data.metrics)[0];

  function lineSets() {
    return data.series.map((set) => {
      const marks = marked[set.model] || new Set();
      return {
        type: "line",
        label: set.model,
        data: set[metric],
        yAxisID: "metric",
        borderColor: set.color,
        backgroundColor: set.color,
        spanGaps: true,
        tension: 0.2,
        pointStyle: set[metric].map((_v, i) => (marks.has(i) ? "triangle" : "circle")),
        pointRadius: set[metric].map((_v, i) => (marks.has(i) ? 8 : 2)),
        pointBorderColor: set[metric].map((_v, i) => (marks.has(i) ? "#b91c1c" : set.color)),
        pointBorderWidth: set[metric].map((_v, i) => (marks.has(i) ? 3 : 1)),
      };
    });
  }

  const calls = {
    type: "bar",
    label: "Calls (all models)",
    data: data.usage,
    yAxisID: "calls",
    backgroundColor: "rgba(107, 114, 128, 0.25)",
    order: 10,
  };

  const chart = new Chart(canvas, {
    data: { labels: data.labels, datasets: [calls, ...lineSets()] },
    options: {
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        metric: { position: "left", beginAtZero: true, title: { display: true, text: data.metrics[metric] } },
        calls: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "Calls" } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (item) => `${item.dataset.label}: ${item.raw === null ? "–" : number.format(item.raw)}`,
          },
        },
      },
      onClick: (_event, elements) => {
        if (elements.length) window.location.assign(data.calls_urls[elements[0].index]);
      },
      onHover: (event, elements) => {
        event.native.target.style.cursor = elements.length ? "pointer" : "default";
      },
    },
  });

  for (const button of document.querySelectorAll("[data-perf-metric]")) {
    button.addEventListener("click", () => {
      metric = button.dataset.perfMetric;
      for (const other of document.querySelectorAll("[data-perf-metric]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      chart.data.datasets = [calls, ...lineSets()];
      chart.options.scales.metric.title.text = data.metrics[metric];
      chart.update();
    });
  }
  canvas.dataset.ready = "true";
})();
