// The workflow bundle's entry point: every exported function is a workflow type the worker
// registers, so helpers (id builders included, in ./ids) stay out of this file.
export { PIPELINE_WORKFLOW_ID, STREAMING_WORKFLOW_ID } from './ids';
export { INVALID_INPUT } from './input';
export { MAX_SLICES } from './slices';
export * from './batch-run';
export * from './backfill-chunk';
export * from './streaming-supervisor';
export * from './pipeline';
export * from './fleet-simulation';
