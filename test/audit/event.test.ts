// What may enter an audit row, without a database: validation, secret refusal, the canonical
// bytes and the hash an outside verifier recomputes.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AUDIT_ACTIONS } from '../../src/audit/actions.ts';
import { canonicalJson, eventHash, GENESIS_HASH } from '../../src/audit/canonical.ts';
import { scrubDetails, validateEvent, type AuditEventInput } from '../../src/audit/event.ts';

const base: AuditEventInput = { action: 'signin.failure', actor: 'anonymous', outcome: 'failure', ip: '198.51.100.4' };

describe('scrubDetails', () => {
  it.each([
    ['password'],
    ['newPassword'],
    ['client_secret'],
    ['refresh_token'],
    ['accessToken'],
    ['code'],
    ['backup_codes'],
    ['seed'],
    ['otp'],
    ['totp_seed'],
    ['api_key'],
    ['privateKey'],
    ['Authorization'],
    ['PASSWORD'],
  ])('refuses a key named %s, naming the key and not the value', (key) => {
    const call = () => scrubDetails({ method: 'password', nested: { [key]: 'hunter2hunter2' } });
    expect(call).toThrow(/never carry secrets/);
    expect(call).toThrow(new RegExp(`details\\.nested\\.${key}`));
    try {
      call();
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('refuses secret-looking values under innocent keys: a JWT, an otpauth URI, a sealed value, an argon2 hash', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2ln';
    expect(() => scrubDetails({ note: jwt })).toThrow(/looks like a credential/);
    expect(() => scrubDetails({ list: ['ok', 'otpauth://totp/x?secret=ABC'] })).toThrow(/details\.list\[1\]/);
    expect(() => scrubDetails({ blob: `v1.${'A'.repeat(16)}.${'B'.repeat(40)}` })).toThrow(/looks like a credential/);
    expect(() => scrubDetails({ h: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA' })).toThrow(/looks like a credential/);
  });

  it('keeps what is not a secret, drops undefined, and turns -0 into 0', () => {
    expect(
      scrubDetails({ method: 'password', kid: 'abc', client_id: 'svc_x', key_id: 'k', reason: 'wrong_password', n: -0, gone: undefined }),
    ).toEqual({
      method: 'password',
      kid: 'abc',
      client_id: 'svc_x',
      key_id: 'k',
      reason: 'wrong_password',
      n: 0,
    });
    expect(Object.is(scrubDetails({ n: -0 }).n, 0)).toBe(true);
  });

  it('refuses what jsonb would not read back the same, and what is too big', () => {
    expect(() => scrubDetails({ s: 'a\u0000b' })).toThrow(/well-formed/);
    expect(() => scrubDetails({ s: 'lone \ud800' })).toThrow(/well-formed/);
    expect(() => scrubDetails({ n: Number.NaN })).toThrow(/finite/);
    expect(() => scrubDetails({ d: new Date() })).toThrow(/a Date/);
    expect(() => scrubDetails([1, 2])).toThrow(/JSON object/);
    expect(() => scrubDetails({ a: { b: { c: { d: { e: 1 } } } } })).toThrow(/nested deeper/);
    expect(() => scrubDetails(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'.repeat(300)])))).toThrow(
      /larger than 4096 bytes/,
    );
  });
});

describe('validateEvent', () => {
  it('accepts a well-formed event and fills absent fields with null', () => {
    expect(validateEvent({ ...base, details: { method: 'password' } })).toEqual({
      action: 'signin.failure',
      actor: 'anonymous',
      outcome: 'failure',
      ip: '198.51.100.4',
      target: null,
      request_id: null,
      details: { method: 'password' },
    });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an action not shaped domain.verb', { action: 'SignIn' }, /action: must look like/],
    ['an action with SQL in it', { action: "signin.success'; drop table audit_event; --" }, /action/],
    ['an unknown actor form', { actor: 'root' }, /actor: must be usr_/],
    ['an outcome outside the three', { outcome: 'maybe' }, /outcome/],
    ['an ip that is not an address', { ip: '1.2.3.4; evil' }, /ip: must be an IP address/],
    ['a target with a control character', { target: 'a\nb' }, /target: must be printable/],
    ['a misspelt field', { request_id: 'r' }, /Unrecognized key/],
  ])('refuses %s', (_what, change, message) => {
    expect(() => validateEvent({ ...base, ...change } as AuditEventInput)).toThrow(message);
  });

  it('lists every action the design requires (docs/architecture.md, "Audit log"), each shaped domain.verb', () => {
    for (const a of AUDIT_ACTIONS) expect(a).toMatch(/^[a-z]+(\.[a-z_]+)+$/);
    for (const a of [
      'signin.success',
      'signin.failure',
      'factor.enroll',
      'password.change',
      'invitation.create',
      'user.role_change',
      'user.permission_change',
      'user.disable',
      'client.secret_rotate',
      'key.rotate',
      'token.refresh_reuse',
      'ratelimit.trip',
    ]) {
      expect(AUDIT_ACTIONS).toContain(a);
    }
  });
});

describe('canonical JSON and the row hash', () => {
  it('sorts keys by UTF-16 code units at every level, with no whitespace (RFC 8785)', () => {
    expect(canonicalJson({ b: 1, a: [{ z: null, y: 'é' }], A: true, '\u20ac': 1, '\ud83d\ude00': 2 })).toBe(
      '{"A":true,"a":[{"y":"é","z":null}],"b":1,"€":1,"😀":2}',
    );
    expect(canonicalJson({ n: 1e21, f: 0.1 + 0.2, i: -5 })).toBe('{"f":0.30000000000000004,"i":-5,"n":1e+21}');
  });

  it('is SHA-256 over prev_hash followed by the canonical row, as an outside verifier computes it', () => {
    const fields = {
      seq: 1,
      time: '2026-11-26T11:00:00.000Z',
      actor: 'usr_abc',
      ip: null,
      action: 'password.change',
      target: 'usr_abc',
      outcome: 'success',
      request_id: 'req-1',
      details: { method: 'account_page' },
      prev_hash: GENESIS_HASH,
    };
    // Written out by hand: the documented layout, not the implementation's.
    const canonical =
      '{"action":"password.change","actor":"usr_abc","details":{"method":"account_page"},"ip":null,"outcome":"success",' +
      `"prev_hash":"${GENESIS_HASH}","request_id":"req-1","seq":1,"target":"usr_abc","time":"2026-11-26T11:00:00.000Z"}`;
    expect(eventHash(fields)).toBe(
      crypto
        .createHash('sha256')
        .update(GENESIS_HASH + canonical)
        .digest('hex'),
    );
    expect(eventHash({ ...fields, details: { method: 'account_pagf' } })).not.toBe(eventHash(fields));
  });
});
