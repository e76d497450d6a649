import { z } from 'zod';

// Text Postgres can hold. JSON and JS strings allow two things our columns refuse:
// - U+0000 (NUL): `text` cannot contain it, `jsonb` refuses the escape \u0000;
// - an unpaired UTF-16 surrogate ("\udfff" in JSON, or %ED%B0%80 decoded leniently): not Unicode at all,
//   so it has no UTF-8 encoding and `jsonb` refuses it.
// Input is checked once at the edge (src/http/plugins/input-guard.ts for every route, the IPN parser for
// webhook bodies) and refused with 400 naming the field, instead of surfacing later as a 500 from Postgres.

export const NUL_PROBLEM = 'must not contain a NUL character (U+0000)';
export const SURROGATE_PROBLEM = 'must not contain an unpaired UTF-16 surrogate (not valid Unicode)';

/** Deeper than this, a JSON value is refused: real request bodies are 2-3 levels deep. */
export const MAX_JSON_DEPTH = 32;

// Without the `u` flag a regex sees UTF-16 code units, so a surrogate half is matchable on its own.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Why Postgres could not store this string, or null when it can. */
export function textProblem(value: string): string | null {
  if (value.includes('\u0000')) return NUL_PROBLEM;
  if (LONE_SURROGATE.test(value)) return SURROGATE_PROBLEM;
  return null;
}

/** The same text with NUL and unpaired surrogates replaced by U+FFFD (for a queryable copy only; never for a decision). */
export function sanitizeText(value: string): string {
  return value.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATES, '\uFFFD');
}

/** A zod string that Postgres can store; compose it like z.string() (`safeText().max(200)`). */
export function safeText(): z.ZodString {
  return z.string().refine((value) => textProblem(value) === null, { error: (issue) => textProblem(String(issue.input)) ?? 'is not storable text' });
}

export interface JsonProblem {
  /** Where, as a field path ("body.fee.currency", "querystring.order_id"; "fee.currency" from root ""). */
  field: string;
  message: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

function join(path: string, key: string | number): string {
  const dot = path === '' ? '' : '.';
  if (typeof key === 'number') return `${path}${dot}${key}`;
  // JSON.stringify writes NUL and unpaired surrogates as \u escapes, so the name itself is storable text.
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? `${path}${dot}${key}` : `${path}[${JSON.stringify(key)}]`;
}

/**
 * The first string (value or key) Postgres cannot store, or a nesting deeper than `maxDepth`, in a parsed
 * JSON value (or a parsed query string). Iterative: a hostile nesting cannot overflow the stack here.
 */
export function findJsonProblem(value: unknown, root: string, maxDepth = MAX_JSON_DEPTH): JsonProblem | null {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path: root, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      const problem = textProblem(item.value);
      if (problem) return { field: item.path, message: problem };
      continue;
    }
    if (!isObject(item.value)) continue;
    const depth = item.depth + 1;
    if (depth > maxDepth) return { field: item.path, message: `is nested deeper than ${maxDepth} levels` };
    if (Array.isArray(item.value)) {
      for (let i = item.value.length - 1; i >= 0; i--) stack.push({ value: item.value[i], path: join(item.path, i), depth });
      continue;
    }
    const keys = Object.keys(item.value);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const keyProblem = textProblem(key);
      if (keyProblem) return { field: join(item.path, key), message: `has a key that ${keyProblem}` };
      stack.push({ value: item.value[key], path: join(item.path, key), depth });
    }
  }
  return null;
}

/** Nesting depth of a JSON value (a scalar is 0, `{}` is 1), counting no further than `limit + 1`. Iterative. */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (!isObject(item.value)) continue;
    const depth = item.depth + 1;
    if (depth > max) max = depth;
    if (depth > limit) return depth;
    for (const child of Array.isArray(item.value) ? item.value : Object.values(item.value)) stack.push({ value: child, depth });
  }
  return max;
}

/**
 * A copy of a parsed JSON value that `jsonb` accepts: strings and keys sanitised, non-finite numbers (from
 * literals such as 1e999, which JSON.parse turns into Infinity) as null. Prototype-safe (`__proto__` stays
 * an own key) and iterative; nesting beyond `maxDepth` is cut to null.
 */
export function sanitizeJson(value: unknown, maxDepth = MAX_JSON_DEPTH): unknown {
  const leaf = (v: unknown): unknown => (typeof v === 'string' ? sanitizeText(v) : typeof v === 'number' && !Number.isFinite(v) ? null : v);
  if (!isObject(value)) return leaf(value);
  const rootCopy: unknown = Array.isArray(value) ? [] : Object.create(null);
  const stack: Array<{ from: Record<string, unknown> | unknown[]; to: Record<string, unknown> | unknown[]; depth: number }> = [
    { from: value as Record<string, unknown>, to: rootCopy as Record<string, unknown>, depth: 1 },
  ];
  while (stack.length > 0) {
    const { from, to, depth } = stack.pop()!;
    const entries: Array<[string | number, unknown]> = Array.isArray(from) ? from.map((v, i) => [i, v]) : Object.keys(from).map((k) => [k, from[k]]);
    for (const [key, child] of entries) {
      let copy: unknown;
      if (!isObject(child)) copy = leaf(child);
      else if (depth >= maxDepth) copy = null;
      else {
        copy = Array.isArray(child) ? [] : Object.create(null);
        stack.push({ from: child as Record<string, unknown>, to: copy as Record<string, unknown>, depth: depth + 1 });
      }
      if (Array.isArray(to)) to[key as number] = copy;
      else Object.defineProperty(to, sanitizeText(String(key)), { value: copy, enumerable: true, writable: true, configurable: true });
    }
  }
  return rootCopy;
}
