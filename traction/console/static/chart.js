// A force/time chart on a canvas. Points arrive at up to 50 Hz; drawing happens at most once per
// screen refresh (requestAnimationFrame), so the chart keeps up whatever the telemetry rate.
export class Chart {
  constructor(canvas, { windowS = null, maxLbf = 100 } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.windowS = windowS;
    this.maxLbf = maxLbf;
    this.points = []; // [t, target, measured] in seconds and lbf
    this.marks = []; // moments (s) the settings changed
    this.pending = false;
  }

  add(t, target, measured) {
    this.points.push([t, target, measured]);
    if (this.windowS === null && this.points.length > 20000) this.points = decimate(this.points);
    if (this.windowS !== null) {
      const from = t - this.windowS;
      while (this.points.length && this.points[0][0] < from) this.points.shift();
    }
    this.schedule();
  }

  /** A vertical line at ``t``: where a settings change took effect. */
  mark(t) {
    this.marks.push(t);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { ctx, canvas, points } = this;
    const w = canvas.width, h = canvas.height, pad = 36;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    if (!points.length) return;
    const t0 = this.windowS === null ? points[0][0] : points[points.length - 1][0] - this.windowS;
    const t1 = Math.max(points[points.length - 1][0], t0 + 1);
    const top = Math.max(this.maxLbf, ...points.map((p) => Math.max(p[1], p[2])));
    const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
    const y = (f) => h - pad - (f / top) * (h - 2 * pad);
    ctx.strokeStyle = "#555555";
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
    ctx.strokeRect(pad, pad / 2, w - 2 * pad, h - 1.5 * pad);
    ctx.fillStyle = "#1a1a1a";
    ctx.font = "13px sans-serif";
    ctx.fillText(`${top.toFixed(0)} lbf`, 2, pad / 2 + 10);
    ctx.fillText("0", 2, h - pad);
    const line = (index, dash, color, width) => {
      ctx.beginPath();
      ctx.setLineDash(dash);
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[index])) : ctx.moveTo(x(p[0]), y(p[index]))));
      ctx.stroke();
    };
    ctx.strokeStyle = "#1d5e20";
    ctx.lineWidth = 2;
    ctx.setLineDash([2, 3]);
    for (const t of this.marks.filter((m) => m >= t0)) {
      ctx.beginPath();
      ctx.moveTo(x(t), pad / 2);
      ctx.lineTo(x(t), h - pad);
      ctx.stroke();
    }
    line(1, [6, 4], "#6b2d00", 1.5);
    line(2, [], "#003f8a", 2);
    ctx.setLineDash([]);
  }
}

function decimate(points) {
  // Keep the min and max of each pair of points, so peaks survive.
  const out = [];
  for (let i = 0; i + 1 < points.length; i += 2) {
    const a = points[i], b = points[i + 1];
    out.push(a[2] >= b[2] ? a : b);
  }
  return out;
}
