import { describe, expect, it } from 'vitest';
import { ACR_MFA, ACR_MFA_OR_STRONGER, ACR_PHR, checkAuthentication, stepUpChallenge } from '../../src/verify/index.ts';

describe('stepUpChallenge (RFC 9470 §3)', () => {
  it('builds the WWW-Authenticate value with acr_values and max_age', () => {
    expect(stepUpChallenge({ acrValues: [ACR_PHR], maxAge: 300 })).toBe(
      'Bearer error="insufficient_user_authentication", ' +
        'error_description="A different authentication level is required", ' +
        'acr_values="urn:gatehouse:acr:phr", max_age="300"',
    );
  });

  it('puts the realm first, joins several acr values with spaces, and describes a max_age-only challenge', () => {
    expect(stepUpChallenge({ realm: 'agents', acrValues: ACR_MFA_OR_STRONGER })).toBe(
      'Bearer realm="agents", error="insufficient_user_authentication", ' +
        'error_description="A different authentication level is required", ' +
        'acr_values="urn:gatehouse:acr:mfa urn:gatehouse:acr:phr"',
    );
    expect(stepUpChallenge({ maxAge: 60 })).toBe(
      'Bearer error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="60"',
    );
  });

  it('escapes quotes and refuses header injection', () => {
    expect(stepUpChallenge({ realm: 'a"b' })).toContain('realm="a\\"b"');
    expect(() => stepUpChallenge({ realm: 'x\r\nSet-Cookie: a=b' })).toThrow(TypeError);
    expect(() => stepUpChallenge({ acrValues: ['two words'] })).toThrow(TypeError);
    expect(() => stepUpChallenge({ maxAge: -1 })).toThrow(TypeError);
  });
});

describe('checkAuthentication', () => {
  const now = 1_700_000_000;
  const person = { acr: ACR_MFA, auth_time: now - 120 };

  it('passes a recent enough authentication at an accepted level', () => {
    expect(checkAuthentication(person, { acrValues: ACR_MFA_OR_STRONGER, maxAge: 300, now })).toEqual({ ok: true });
    expect(checkAuthentication({ acr: ACR_PHR, auth_time: now }, { acrValues: ACR_MFA_OR_STRONGER, now })).toEqual({ ok: true });
    expect(checkAuthentication({}, { now })).toEqual({ ok: true }); // nothing asked
  });

  it('a stale auth_time fails with a max_age challenge', () => {
    const result = checkAuthentication(person, { maxAge: 60, now });
    expect(result).toEqual({
      ok: false,
      reason: 'max_age',
      challenge:
        'Bearer error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="60"',
    });
  });

  it('a missing auth_time cannot satisfy max_age', () => {
    expect(checkAuthentication({ acr: ACR_MFA }, { maxAge: 600, now })).toMatchObject({ ok: false, reason: 'max_age' });
  });

  it('a wrong acr fails with an acr_values challenge restating the whole requirement', () => {
    const result = checkAuthentication(person, { acrValues: [ACR_PHR], maxAge: 300, now });
    expect(result).toEqual({
      ok: false,
      reason: 'acr',
      challenge:
        'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", ' +
        'acr_values="urn:gatehouse:acr:phr", max_age="300"',
    });
  });

  it('a service token (no acr) never meets an acr requirement', () => {
    expect(checkAuthentication({}, { acrValues: ACR_MFA_OR_STRONGER, now })).toMatchObject({ ok: false, reason: 'acr' });
  });

  it('exports the Gatehouse ACR values', () => {
    expect(ACR_MFA).toBe('urn:gatehouse:acr:mfa');
    expect(ACR_PHR).toBe('urn:gatehouse:acr:phr');
  });
});
