// kinglet lab test (see lab.ts).
export { runTest as run } from './lab.ts';
