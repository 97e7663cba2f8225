// kinglet lab up (see lab.ts).
export { runUp as run } from './lab.ts';
