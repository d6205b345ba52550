// Line charts of a job's history (Chart.js, Debian's libjs-chart.js, loaded as the global
// `Chart`). Each chart's figure says how many points it holds (data-points) and its latest
// value in text, for screen readers and for the browser tests.
import { h, num } from "./dom.js";

const COLOURS = ["#0a55b5", "#a11d1d", "#14532d", "#6b3fa0"];

export class Curve {
  // series: [{key, label}]; each point is {x, y} under its key.
  constructor(title, series, xTitle = "update") {
    this.series = series;
    this.canvas = h("canvas", { role: "img", "aria-label": title });
    this.caption = h("figcaption", {}, title);
    // Chart.js sizes the canvas to its parent: a box of fixed height keeps it from growing.
    this.figure = h("figure", { class: "chart", "data-points": "0" }, this.caption,
      h("div", { class: "plot" }, this.canvas));
    this.title = title;
    this.chart = new Chart(this.canvas, {
      type: "line",
      data: {
        datasets: series.map((s, i) => ({
          label: s.label, data: [], borderColor: COLOURS[i % COLOURS.length],
          backgroundColor: COLOURS[i % COLOURS.length], pointRadius: 2, borderWidth: 2,
        })),
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { type: "linear", title: { display: true, text: xTitle } },
          y: { ticks: { callback: (v) => num(Number(v).toPrecision(3), 8) } },
        },
        plugins: { legend: { display: series.length > 1 } },
      },
    });
  }

  add(key, x, y) {
    const i = this.series.findIndex((s) => s.key === key);
    if (i < 0 || !Number.isFinite(Number(y))) return;
    this.chart.data.datasets[i].data.push({ x: Number(x), y: Number(y) });
  }

  // Redraws once after a batch of add() calls, and says what the chart shows.
  render() {
    this.chart.update("none");
    const first = this.chart.data.datasets[0].data;
    this.figure.setAttribute("data-points", String(first.length));
    const latest = first.length ? first[first.length - 1] : null;
    this.caption.textContent = this.title + (latest
      ? " — " + first.length + " points, latest " + num(latest.y, 6) + " at " + latest.x
      : " — no points yet");
  }

  destroy() { this.chart.destroy(); }
}
