// The retry policies compared in workloads (b) and (c), as plain data (they
// cross into the worker processes). Jitter policies keep update()'s default
// attempts and deadline; the naive linear one is the baseline.
export const POLICIES = [
  { id: 'linear', label: 'linear: 2 ms step, cap 25 ms, 32 attempts', retry: { kind: 'linear', stepMs: 2, capMs: 25 }, maxAttempts: 32, combine: false },
  { id: 'exponential', label: 'exponential full jitter: base 1 ms, cap 64 ms', retry: { kind: 'exponential', baseMs: 1, capMs: 64 }, combine: false },
  { id: 'decorrelated', label: 'decorrelated jitter: base 1 ms, cap 64 ms', retry: { kind: 'decorrelated', baseMs: 1, capMs: 64 }, combine: false },
  // Neighbours of the default, to see which way a better default lies.
  { id: 'exponential-cap16', label: 'exponential full jitter: base 1 ms, cap 16 ms', retry: { kind: 'exponential', baseMs: 1, capMs: 16 }, combine: false },
  { id: 'exponential-cap256', label: 'exponential full jitter: base 1 ms, cap 256 ms', retry: { kind: 'exponential', baseMs: 1, capMs: 256 }, combine: false },
  { id: 'default', label: 'update() defaults, combining off', combine: false },
  { id: 'default+combine', label: 'update() defaults (combining on)', combine: true },
];

export const DEFAULT_OFF = POLICIES.find((p) => p.id === 'default');
export const DEFAULT_ON = POLICIES.find((p) => p.id === 'default+combine');
