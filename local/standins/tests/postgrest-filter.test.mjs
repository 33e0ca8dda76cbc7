// The one PostgREST filter grammar (local/standins/postgrest-filter.mjs) that the REST and Realtime
// stand-ins share: parsing `[not.]op.value` filters and compiling them to SQL with quoted
// identifiers and $n parameters.
// Run: node --test local/standins/tests/postgrest-filter.test.mjs

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compile,
  FilterError,
  parse,
  splitTopLevel,
  unquote,
} from '../postgrest-filter.mjs';

const failure = (fn) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FilterError, String(err));
    return { message: err.message, details: err.details, parts: err.parts };
  }
  assert.fail('expected a FilterError');
};

describe('parse', () => {
  it('reads the comparison operators, with not.', () => {
    for (const op of ['eq', 'neq', 'lt', 'lte', 'gt', 'gte']) {
      assert.deepEqual(parse('a', `${op}.1`), { column: 'a', op, negate: false, value: '1' });
    }
    assert.deepEqual(parse('a', 'not.eq.x.y'), {
      column: 'a',
      op: 'eq',
      negate: true,
      value: 'x.y',
    });
    assert.deepEqual(parse('a', 'eq.'), { column: 'a', op: 'eq', negate: false, value: '' });
  });

  it('keeps quotes at the top level and removes them when asked (Realtime)', () => {
    assert.equal(parse('a', 'eq."x,y"').value, '"x,y"');
    assert.equal(parse('a', 'eq."x,y"', { quoted: true }).value, 'x,y');
    assert.equal(parse('a', 'eq."say \\"hi\\""', { quoted: true }).value, 'say "hi"');
    assert.equal(unquote('"a"b"'), '"a"b"');
  });

  it('reads in.(...) lists with quoted items, and is. values', () => {
    assert.deepEqual(parse('id', 'in.(1, 2,"3,4")').values, ['1', '2', '3,4']);
    assert.deepEqual(parse('id', 'in.()').values, []);
    for (const v of ['null', 'not_null', 'true', 'false', 'unknown']) {
      assert.equal(parse('a', `is.${v}`).value, v);
    }
  });

  it('refuses unknown operators, missing ones, bad in lists and is values', () => {
    assert.deepEqual(failure(() => parse('a', 'foo.hey')), {
      message: 'failed to parse filter (foo.hey)',
      details: 'unexpected "foo" expecting operator (eq, gt, ...)',
      parts: ['foo', 'hey'],
    });
    assert.deepEqual(failure(() => parse('a', 'undefined')).parts, ['undefined']);
    assert.deepEqual(failure(() => parse('a', 'like.x%')).parts, ['like', 'x%']);
    assert.match(failure(() => parse('a', 'in.1,2')).details, /wrapped by parentheses/);
    assert.match(failure(() => parse('a', 'is.maybe')).details, /expecting null or trilean/);
  });
});

describe('compile', () => {
  it('renders quoted identifiers and $n parameters, appending to the given params', () => {
    const nodes = [
      parse('user_id', 'eq.u1'),
      parse('na"me', 'not.in.(a,b)'),
      parse('x', 'is.not_null'),
    ];
    assert.deepEqual(compile(nodes, { params: ['first'] }), {
      sql: '"user_id" = $2 AND NOT ("na""me" = ANY($3)) AND "x" IS NOT NULL',
      params: ['first', 'u1', ['a', 'b']],
    });
  });

  it('lets the caller qualify columns', () => {
    const nodes = [parse('a', 'gte.1'), parse('b', 'not.lt.2')];
    assert.deepEqual(compile(nodes, { column: (c) => `r."${c}"` }), {
      sql: 'r."a" >= $1 AND NOT (r."b" < $2)',
      params: ['1', '2'],
    });
    assert.deepEqual(compile([]), { sql: 'TRUE', params: [] });
  });

  it('splits on top-level commas only', () => {
    assert.deepEqual(splitTopLevel('a=eq.1,b=in.(1,2),c=eq."x,y"'), [
      'a=eq.1',
      'b=in.(1,2)',
      'c=eq."x,y"',
    ]);
  });
});
