// Edge paths for the canvas: cubic segments through waypoints (Catmull-Rom), sampling for labels.
import type { XY } from "./model";

export type Cubic = [XY, XY, XY, XY];

export function segments(start: XY, end: XY, waypoints: XY[], selfLoop = false): Cubic[] {
  if (selfLoop && waypoints.length === 0) {
    return [[start, { x: start.x + 160, y: start.y + 80 }, { x: end.x + 160, y: end.y - 80 }, end]];
  }
  if (waypoints.length === 0) {
    const dy = end.y - start.y;
    const dx = end.x - start.x;
    const d = Math.min(Math.hypot(dx, dy) / 2, 80);
    const vertical = Math.abs(dy) >= Math.abs(dx);
    const c1 = vertical ? { x: start.x, y: start.y + d } : { x: start.x + Math.sign(dx) * d, y: start.y };
    const c2 = vertical ? { x: end.x, y: end.y - d } : { x: end.x - Math.sign(dx) * d, y: end.y };
    return [[start, c1, c2, end]];
  }
  const pts = [start, ...waypoints, end];
  const out: Cubic[] = [];
  for (let i = 0; i < pts.length - 1; i++) {
    const p0 = pts[i - 1] ?? pts[i];
    const p1 = pts[i];
    const p2 = pts[i + 1];
    const p3 = pts[i + 2] ?? p2;
    out.push([p1, { x: p1.x + (p2.x - p0.x) / 6, y: p1.y + (p2.y - p0.y) / 6 }, { x: p2.x - (p3.x - p1.x) / 6, y: p2.y - (p3.y - p1.y) / 6 }, p2]);
  }
  return out;
}

export function pathOf(cubics: Cubic[]): string {
  if (!cubics.length) return "";
  const [s] = cubics[0];
  return `M ${s.x},${s.y} ` + cubics.map(([, a, b, e]) => `C ${a.x},${a.y} ${b.x},${b.y} ${e.x},${e.y}`).join(" ");
}

function at([a, b, c, d]: Cubic, t: number): XY {
  const u = 1 - t;
  return {
    x: u * u * u * a.x + 3 * u * u * t * b.x + 3 * u * t * t * c.x + t * t * t * d.x,
    y: u * u * u * a.y + 3 * u * u * t * b.y + 3 * u * t * t * c.y + t * t * t * d.y,
  };
}

/** 60 samples per segment, with the cumulative length at each, for t ↔ point along the curve. */
export function sample(cubics: Cubic[]): { pts: XY[]; lengths: number[] } {
  const pts: XY[] = [];
  for (const c of cubics) for (let i = 0; i <= 60; i++) pts.push(at(c, i / 60));
  const lengths = [0];
  for (let i = 1; i < pts.length; i++) lengths.push(lengths[i - 1] + Math.hypot(pts[i].x - pts[i - 1].x, pts[i].y - pts[i - 1].y));
  return { pts, lengths };
}

export function pointAt(samples: { pts: XY[]; lengths: number[] }, t: number): XY {
  const total = samples.lengths[samples.lengths.length - 1] || 1;
  const want = Math.max(0, Math.min(1, t)) * total;
  const i = samples.lengths.findIndex((l) => l >= want);
  return samples.pts[Math.max(0, i)] ?? samples.pts[0];
}

export function nearestT(samples: { pts: XY[]; lengths: number[] }, p: XY): number {
  let best = 0;
  let bestD = Infinity;
  samples.pts.forEach((q, i) => {
    const d = (q.x - p.x) ** 2 + (q.y - p.y) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  });
  const total = samples.lengths[samples.lengths.length - 1] || 1;
  return samples.lengths[best] / total;
}
