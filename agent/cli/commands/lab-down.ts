// kinglet lab down (see lab.ts).
export { runDown as run } from './lab.ts';
