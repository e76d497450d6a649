import { createHmac, timingSafeEqual } from 'node:crypto';
import { jsonDepth, MAX_JSON_DEPTH } from '../domain/text.js';

// NowPayments signs an IPN with hex HMAC-SHA512 (key: the IPN secret) over "the body with keys sorted",
// but its own samples disagree on what that string is, so we accept every documented form. Each form is
// a different serialisation of the same parsed body: accepting several costs one HMAC each and lets
// nobody without the secret forge anything, with one exception (the legacy form, see below).
//
// Input assumption: `body` is the result of JSON.parse on the request. NowPayments produces the signed
// string with JSON.stringify of its own values, so a JS round trip (parse, then stringify) reproduces it:
// a double's shortest representation parses back to the same double and prints the same way. We never
// HMAC the raw bytes because NowPayments does not send them sorted.
//
// Every key of the body is covered by every form: canonical strings are built from own keys only and
// never by assigning into a plain `{}` (where a "__proto__" key would set the prototype and vanish from the
// signed string, so an extra key could ride along on a genuine signature). Bodies nested deeper than
// MAX_JSON_DEPTH have no canonical form at all (verification fails closed; the recursion stays bounded).

export type SignatureForm = 'recursive' | 'recursive-ascii' | 'js-sample' | 'legacy';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// JSON.stringify for a primitive, with its rules for values JSON cannot hold (undefined, functions,
// NaN) so that every form agrees with what a JS signer would have produced.
function primitive(value: unknown): string | undefined {
  return JSON.stringify(value) as string | undefined;
}

// Python `json.dumps(sort_keys=True, separators=(',', ':'))` and the PHP sample (recursive ksort, then
// json_encode with JSON_UNESCAPED_SLASHES): objects get their keys sorted at every depth, arrays stay
// arrays. We write the keys ourselves instead of building a sorted JS object because a JS object always
// enumerates integer-like keys ("2", "10") first in numeric order, which is not what Python/PHP print.
function stringifySorted(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    return `[${value.map((item) => stringifySorted(item) ?? 'null').join(',')}]`;
  }
  if (isPlainObject(value)) {
    const parts: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const encoded = stringifySorted(value[key]);
      if (encoded !== undefined) parts.push(`${JSON.stringify(key)}:${encoded}`);
    }
    return `{${parts.join(',')}}`;
  }
  return primitive(value);
}

// Python's default ensure_ascii and PHP's json_encode (without JSON_UNESCAPED_UNICODE) print every
// non-ASCII UTF-16 code unit as \uXXXX; JSON.stringify prints it raw. Only matters for non-ASCII text such
// as an order_description in Cyrillic, but that is common for a Telegram shop.
function escapeNonAscii(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// The current official JS sample, reproduced on purpose including its quirk: `reduce(..., {})` turns an
// array into an object keyed "0", "1", ... (and `[]` into `{}`), and the result goes through
// JSON.stringify, so integer-like keys come out in numeric order.
// The accumulator has no prototype, so "__proto__" is an ordinary own key there and stays in the string.
function jsSampleSort(obj: Record<string, unknown> | unknown[]): Record<string, Json> {
  return Object.keys(obj).sort().reduce<Record<string, Json>>((result, key) => {
    const value = (obj as Record<string, unknown>)[key];
    result[key] = (value && typeof value === 'object'
      ? jsSampleSort(value as Record<string, unknown>)
      : value) as Json;
    return result;
  }, Object.create(null) as Record<string, Json>);
}

// `JSON.stringify(p, Object.keys(p).sort())`: a replacer array is an allow-list applied at every depth,
// so nested objects keep only keys that also exist at the top level (usually none: `fee` becomes {}).
function legacy(body: Record<string, unknown>): string {
  return JSON.stringify(body, Object.keys(body).sort());
}

// Legacy leaves nested fields out of the signed string, so accepting it for a body with nested values
// would let anyone replay a real signature with altered nested fields. We accept it only for flat bodies,
// where it signs everything. (For a flat body it equals the recursive form unless keys are integer-like,
// so in practice it is deduplicated away.)
function isFlat(body: Record<string, unknown>): boolean {
  return Object.values(body).every((value) => typeof value !== 'object' || value === null);
}

export function canonicalString(body: unknown, form: SignatureForm): string | undefined {
  if (!isPlainObject(body) || jsonDepth(body) > MAX_JSON_DEPTH) return undefined;
  return canonical(body, form);
}

function canonical(body: Record<string, unknown>, form: SignatureForm): string | undefined {
  switch (form) {
    case 'recursive':
      return stringifySorted(body);
    case 'recursive-ascii': {
      const json = stringifySorted(body);
      return json === undefined ? undefined : escapeNonAscii(json);
    }
    case 'js-sample':
      return JSON.stringify(jsSampleSort(body));
    case 'legacy':
      return legacy(body);
  }
}

// Every string we are willing to check a signature against, most common first, each made only when
// asked for (a genuine IPN is nearly always the first). Nothing for anything but a JSON object: an IPN
// is always an object, and no candidate makes verification fail closed.
function* candidates(body: unknown): Generator<string> {
  if (!isPlainObject(body) || jsonDepth(body) > MAX_JSON_DEPTH) return;
  const forms: SignatureForm[] = ['recursive', 'recursive-ascii', 'js-sample'];
  if (isFlat(body)) forms.push('legacy');
  const seen = new Set<string>();
  for (const form of forms) {
    const s = canonical(body, form);
    if (s === undefined || seen.has(s)) continue;
    seen.add(s);
    yield s;
  }
}

export function canonicalForms(body: unknown): string[] {
  return [...candidates(body)];
}

function hmac(data: string, secret: string): Buffer {
  return createHmac('sha512', secret).update(data, 'utf8').digest();
}

// Test support and the fake NowPayments sender: signs exactly one form, even one the verifier would
// refuse (legacy on a nested body), so tests can show that it is refused.
export function signIpn(body: unknown, secret: string, form: SignatureForm = 'recursive'): string {
  const s = canonicalString(body, form);
  if (s === undefined) throw new TypeError(`an IPN body must be a JSON object nested at most ${MAX_JSON_DEPTH} levels deep`);
  return hmac(s, secret).toString('hex');
}

const SHA512_HEX = /^[0-9a-fA-F]{128}$/;

export function verifyIpnSignature(body: unknown, header: string | undefined, secret: string): boolean {
  // An empty secret would make the HMAC key public; treat it as a configuration error, not a pass.
  if (secret.length === 0) return false;
  // Check the shape first so Buffer.from(hex) cannot silently drop bad characters and so
  // timingSafeEqual (which throws on unequal lengths) always gets 64 bytes.
  if (header === undefined || !SHA512_HEX.test(header.trim())) return false;
  const received = Buffer.from(header.trim(), 'hex');
  // Each comparison is constant-time. Stopping at the first form that matches only tells which form
  // the sender used, which is no secret; a forged signature is checked against every form.
  for (const candidate of candidates(body)) {
    if (timingSafeEqual(hmac(candidate, secret), received)) return true;
  }
  return false;
}
