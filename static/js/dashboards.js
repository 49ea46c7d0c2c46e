// Draws every <canvas data-chart="<json id>"> with Chart.js from the JSON the server put beside it.
// No inline script anywhere: the page's Content-Security-Policy allows scripts from 'self' only.
(function () {
  "use strict";

  const PALETTE = ["#2f5bea", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#64748b", "#ec4899", "#84cc16", "#14b8a6", "#f97316", "#6366f1"];

  function formatter(spec) {
    if (spec.percent) {
      return (v) => (v == null ? "—" : (v * 100).toFixed(1) + "%");
    }
    if (spec.currency) {
      const nf = new Intl.NumberFormat(document.documentElement.lang || "en", { style: "currency", currency: spec.currency, maximumFractionDigits: 0 });
      return (v) => (v == null ? "—" : nf.format(v));
    }
    return (v) => (v == null ? "—" : new Intl.NumberFormat().format(v));
  }

  function draw(canvas) {
    if (canvas.dataset.chartDrawn === "1" || typeof window.Chart === "undefined") return;
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent);
    const fmt = formatter(spec);
    const mixed = spec.series.some((s) => s.kind === "line") && spec.series.some((s) => s.kind === "bar");
    const datasets = spec.series.map((s, i) => ({
      type: s.kind,
      label: s.label,
      data: s.data,
      backgroundColor: PALETTE[i % PALETTE.length] + (s.kind === "line" ? "33" : "cc"),
      borderColor: PALETTE[i % PALETTE.length],
      borderWidth: s.kind === "line" ? 2 : 0,
      pointRadius: s.kind === "line" ? (spec.labels.length > 40 ? 0 : 2) : undefined,
      spanGaps: true,
      order: mixed && s.kind === "line" ? 0 : 1,
    }));
    const chart = new window.Chart(canvas, {
      type: spec.series[0] ? spec.series[0].kind : "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: !!spec.stacked, ticks: { maxTicksLimit: 12 } },
          y: { stacked: !!spec.stacked, beginAtZero: true, ticks: { callback: (v) => fmt(v) } },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + fmt(ctx.parsed.y) } },
        },
      },
    });
    canvas.dataset.chartDrawn = "1";
    // Browser tests read these to check the chart drew with data.
    canvas.dataset.points = String(spec.series.reduce((n, s) => n + s.data.filter((v) => v != null).length, 0));
    canvas.chart = chart;
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  // htmx copies the old element's attributes onto a same-id new one while settling; a drawn canvas carries
  // a style attribute Chart.js set, which the CSP would refuse to apply. Take charts down before the swap.
  document.addEventListener("htmx:beforeSwap", (event) => {
    event.detail.target.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      if (canvas.chart) canvas.chart.destroy();
      canvas.removeAttribute("style");
    });
  });
  // The range form: explicit dates win over a preset on the server, so choosing one clears the other.
  function wireRangeForm(form) {
    const preset = form.querySelector("select[name=preset]");
    const dates = form.querySelectorAll("input[type=date]");
    if (!preset) return;
    preset.addEventListener("change", () => {
      if (preset.value) dates.forEach((input) => (input.value = ""));
    });
    dates.forEach((input) => input.addEventListener("change", () => (preset.value = "")));
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawAll(document);
    document.querySelectorAll("form.range").forEach(wireRangeForm);
  });
  document.addEventListener("htmx:afterSettle", (event) => drawAll(event.target));
})();
