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
