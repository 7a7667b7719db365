/**
 * The JSON models the server extension answers with (mirrors nbml/server/models.py).
 */

export interface IPrimaryMetric {
  name: string;
  value: number | string | boolean | null;
  /** Set on AutoML and HyperDrive parents: the child whose value this is (the best so far). */
  best_run_id?: string | null;
}

export interface IComputeTarget {
  name: string;
  kind: string;
  /** Provisioning state recorded in the store. */
  state: string;
  /** Live status reported by the target's backend ("Unknown" if it could not be asked). */
  status: string;
  /** Node counts by state for clusters, null for single machines. */
  nodes: { [state: string]: number } | null;
  error: string | null;
}

export interface IRunSummary {
  run_id: string;
  experiment: string;
  parent_id: string | null;
  kind: string;
  display_name: string | null;
  status: string;
  is_terminal: boolean;
  cancel_requested: boolean;
  compute_target: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  duration_seconds: number | null;
  primary_metric: IPrimaryMetric | null;
  /** Iterations ended of the total, for AutoML and HyperDrive parents; null for other runs. */
  progress: IProgress | null;
  error: string | null;
  /** Path of the run page relative to the server's base URL. */
  page: string;
}

export interface IExperiment {
  name: string;
  created_at: number;
  run_count: number;
  last_run_at: number | null;
  latest_runs: IRunSummary[];
}

export interface IComputeList {
  targets: IComputeTarget[];
}

export interface IExperimentList {
  experiments: IExperiment[];
}

/** Iterations ended out of the total a parent (AutoML, HyperDrive) will run. */
export interface IProgress {
  done: number;
  total: number;
}

export interface ICancelResult {
  run_id: string;
  flagged: string[];
  status: string;
}
