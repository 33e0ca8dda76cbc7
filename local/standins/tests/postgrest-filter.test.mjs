// The one PostgREST filter grammar (local/standins/postgrest-filter.mjs) that the REST and Realtime
// stand-ins share: parsing `[not.]op.value` and `or=(...)` trees, and compiling them to SQL with
// quoted identifiers and $n parameters.
// Run: node --test local/standins/tests/postgrest-filter.test.mjs

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compile,
  FilterError,
  parse,
  parseTree,
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

  it('keeps quotes at the top level and removes them when asked (logic trees, Realtime)', () => {
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

describe('parseTree', () => {
  it('reads nested and/or trees with quoted values (the jobs list cursor)', () => {
    const tree = parseTree(
      'or',
      '(created_at.lt."2025-01-01 00:00:00+00",and(created_at.eq."2025-01-01 00:00:00+00",id.lt.7))',
    );
    assert.deepEqual(tree, {
      op: 'or',
      negate: false,
      children: [
        { column: 'created_at', op: 'lt', negate: false, value: '2025-01-01 00:00:00+00' },
        {
          op: 'and',
          negate: false,
          children: [
            { column: 'created_at', op: 'eq', negate: false, value: '2025-01-01 00:00:00+00' },
            { column: 'id', op: 'lt', negate: false, value: '7' },
          ],
        },
      ],
    });
    assert.equal(parseTree('and', '(a.not.is.null,not.or(b.eq.1))', true).children[1].negate, true);
  });

  it('refuses a tree without parentheses or with an item lacking an operator', () => {
    assert.match(failure(() => parseTree('or', 'a.eq.1')).message, /failed to parse logic tree/);
    assert.match(failure(() => parseTree('or', '(a.foo.1)')).details, /expecting operator/);
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

  it('renders trees and lets the caller qualify columns', () => {
    const tree = parseTree('or', '(a.gte.1,and(b.lt.2,c.neq.3))', true);
    assert.deepEqual(compile([tree], { column: (c) => `r."${c}"` }), {
      sql: 'NOT ((r."a" >= $1 OR (r."b" < $2 AND r."c" <> $3)))',
      params: ['1', '2', '3'],
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
