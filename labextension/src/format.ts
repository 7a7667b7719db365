/**
 * Pure formatting helpers for the sidebar.
 */

/** "4.2 s", "3 min 05 s", "2 h 07 min"; an empty string when unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  }
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) {
    return `${h} h ${String(m).padStart(2, '0')} min`;
  }
  return `${m} min ${String(rest).padStart(2, '0')} s`;
}

/** A metric value shortened for a narrow column. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      return String(value);
    }
    if (value !== 0 && (Math.abs(value) >= 1e6 || Math.abs(value) < 1e-3)) {
      return value.toExponential(3);
    }
    // toPrecision pads with zeros ("0.9000"); the round trip through a number drops them.
    return String(Number(value.toPrecision(4)));
  }
  if (value === null || value === undefined) {
    return '';
  }
  return String(value);
}

/** The code the "insert" action puts into the notebook (the id is escaped for a Python string). */
export function runGetSnippet(runId: string): string {
  const quoted = runId.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return `from nbml import Run, Workspace\nws = Workspace.from_config()\nrun = Run.get(ws, "${quoted}")\nrun`;
}

/** CSS-safe lower-case form of a status, for the status badge class. */
export function statusClass(status: string): string {
  return 'nbml-status-' + status.toLowerCase().replace(/[^a-z]/g, '');
}

/** "12:03:41" today, "Nov 28 12:03" on another day; empty when unknown (seconds since the epoch). */
export function formatStart(seconds: number | null, now: Date = new Date()): string {
  if (seconds === null || !isFinite(seconds)) {
    return '';
  }
  const at = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  if (at.toDateString() === now.toDateString()) {
    return `${time}:${pad(at.getSeconds())}`;
  }
  return `${at.toLocaleString('en', { month: 'short' })} ${at.getDate()} ${time}`;
}

/** The tail of a run id that tells runs of one experiment apart ("…_1732975421_ab12cd34" -> "ab12cd34"). */
export function shortId(runId: string): string {
  const parts = runId.split('_');
  const last = parts[parts.length - 1];
  return last.length >= 4 && last !== runId ? last : runId.slice(-8);
}
