import { v5 as uuidv5 } from 'uuid';
import type { EffectName } from '../machines/payment.events.js';

// A fixed namespace: the same (payment, effect, attempt) always maps to the same pg-boss job id, so a
// second send for a step already queued, running or completed is refused by the job table's primary key.
const NAMESPACE = '6f1b6c1e-8a53-4f7e-9d3c-0c1f4b8a2e55';

export function effectJobId(paymentId: string, effect: EffectName, attempt: number): string {
  return uuidv5(`${paymentId}:${effect}:${attempt}`, NAMESPACE);
}
