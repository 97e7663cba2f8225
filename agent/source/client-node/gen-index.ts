// Stands in for @kubernetes/client-node's dist/gen/index.js when dist/config.js
// (KubeConfig) imports it: the only two names it takes from there, from the
// files that define them. See ../client-node-slim.ts.
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
