// The workflow bundle's entry: every workflow type the worker registers.
export { serviceWorkflow } from './service';
export { rolloutWorkflow } from './rollout';
export { gcWorkflow } from './gc';
