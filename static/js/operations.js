// Operations: tokens per whole week and model, from the server's numbers (the table has them too).
(function () {
  "use strict";
  const source = document.getElementById("weekly-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const exact = new Intl.NumberFormat("en-US");
  const inK = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  new Chart(document.getElementById("weekly-chart"), {
    type: "line",
    data: {
      labels: data.labels,
      datasets: data.datasets.map((set) => ({ ...set, borderWidth: 2, pointRadius: 3, cubicInterpolationMode: "monotone" })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { callback: (value) => inK.format(value / 1000) + "K" } } },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${exact.format(item.raw)} tokens` } },
      },
    },
  });
  document.getElementById("weekly-chart").dataset.rendered = "true";
})();
