import { Counter, Histogram } from 'prom-client';

// Process-wide counters in prom-client's default registry (served by /metrics). Created once per
// process: a second registration of the same name throws, and several services in one test process
// share them, so tests compare deltas.

export type IpnRejectReason = 'missing_signature' | 'bad_signature' | 'malformed_json' | 'forbidden_key' | 'not_an_object' | 'too_deep' | 'too_large';

export const ipnRejected = new Counter({
  name: 'telepay_ipn_rejected_total',
  help: 'IPN requests refused before storing: no or bad signature; malformed, oversized, too deep, or a __proto__ key.',
  labelNames: ['reason'] as const,
});

export const ipnProcessed = new Counter({
  name: 'telepay_ipn_processed_total',
  help: 'Verified IPNs by what became of them (applied, duplicate, parked, stored = kept for reconciliation).',
  labelNames: ['outcome'] as const,
});

export const ipnDuration = new Histogram({
  name: 'telepay_ipn_duration_seconds',
  help: 'Time from a verified IPN body to its answer (store + apply).',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
});

export const reconcileChecks = new Counter({
  name: 'telepay_reconcile_checks_total',
  help: 'What reconciliation did, by kind (delivery, payment, invoice) and outcome.',
  labelNames: ['kind', 'outcome'] as const,
});
