import type { Command } from 'commander';

// Placeholder: the `serve` command arrives with the server (issue 5).
export function registerServe(_program: Command): void {}
