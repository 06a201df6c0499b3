// Who may use which part of the console, and the console's input rules.
import { describe, expect, it } from 'vitest';
import { adminAccess, homeFor } from '../../src/admin/access.ts';
import { parsePermissions, safeReturnTo, splitList } from '../../src/admin/input.ts';
import { noticeFor } from '../../src/admin/notices.ts';
import { parseUserSearch, searchUsers } from '../../src/admin/users.ts';
import { parseAuditFilter } from '../../src/admin/audit.routes.ts';
import { clientInput, readClientForm } from '../../src/admin/clients.routes.ts';
import type { AccountListItem } from '../../src/accounts/accounts.service.ts';

describe('admin access', () => {
  it('gives owners everything, auditors the audit log only, and nobody else anything', () => {
    expect(adminAccess({ role: 'owner', permissions: [] })).toEqual({ manage: true, audit: true });
    expect(adminAccess({ role: 'auditor', permissions: [] })).toEqual({ manage: false, audit: true });
    for (const role of ['viewer', 'operator', 'admin', 'nobody'])
      expect(adminAccess({ role, permissions: [] })).toEqual({ manage: false, audit: false });
    expect(homeFor(adminAccess({ role: 'owner', permissions: [] }))).toBe('/admin/users');
    expect(homeFor(adminAccess({ role: 'auditor', permissions: [] }))).toBe('/admin/audit');
  });

  it('follows the one model for explicit grants: only the wildcard opens a part', () => {
    expect(adminAccess({ role: 'viewer', permissions: ['audit:*:read'] })).toEqual({ manage: false, audit: true });
    expect(adminAccess({ role: 'admin', permissions: ['user:alice:manage', 'audit:2026:read'] })).toEqual({ manage: false, audit: false });
  });
});

describe('return_to after sign-in', () => {
  it('keeps a path in the console', () => {
    expect(safeReturnTo('/admin/users/usr_x?done=reauth', '/admin')).toBe('/admin/users/usr_x?done=reauth');
    expect(safeReturnTo('/admin', '/x')).toBe('/admin');
  });
  it.each([
    'https://evil.example/admin',
    '//evil.example/admin',
    '/\\evil.example',
    '/admin\\@evil.example',
    '/administrator',
    '/admin/../account',
    '/admin/login?return_to=/admin',
    '/admin/callback?code=x',
    '/admin/logout',
    'javascript:alert(1)',
    '',
    'x'.repeat(2000),
  ])('refuses %s', (value) => {
    expect(safeReturnTo(value, 'FALLBACK')).toBe('FALLBACK');
  });
  it('refuses what is not a string', () => {
    expect(safeReturnTo(['/admin'], 'F')).toBe('F');
    expect(safeReturnTo(undefined, 'F')).toBe('F');
  });
});

describe('form input', () => {
  it('reads lists one per line or comma-separated', () => {
    expect(splitList(' a, b\r\nc\n\n,a ')).toEqual(['a', 'b', 'c']);
    expect(splitList(undefined)).toEqual([]);
    expect(splitList('https://x.example/cb?a=1,2', { commas: false })).toEqual(['https://x.example/cb?a=1,2']);
  });
  it('names the permission at fault', () => {
    expect(parsePermissions('agent:summarizer:inject,\nthread:*:view')).toEqual(['agent:summarizer:inject', 'thread:*:view']);
    expect(() => parsePermissions('agent:ok:inject\nDROP TABLE')).toThrow(/"DROP TABLE" is not a permission/);
    expect(() => parsePermissions('agent:*')).toThrow(/"agent:\*" is not a permission/);
  });
  it('maps notices by code only', () => {
    expect(noticeFor('role')).toMatch(/Role changed/);
    expect(noticeFor('<script>')).toBeNull();
    expect(noticeFor('toString')).toBeNull();
    expect(noticeFor(['role'])).toBeNull();
  });
  it('filters the audit log only by known actions and outcomes', () => {
    expect(parseAuditFilter({ action: 'user.role_change', outcome: 'denied', actor: ' usr_a ', before: '12' })).toEqual({
      action: 'user.role_change',
      outcome: 'denied',
      actor: 'usr_a',
      source: '',
      before: 12,
    });
    expect(parseAuditFilter({ action: 'x; drop', outcome: 'maybe', before: '-1' })).toEqual({
      action: '',
      outcome: '',
      actor: '',
      source: '',
      before: null,
    });
    expect(parseAuditFilter({ action: 'control.kill', source: ' svc_agentserver ' })).toMatchObject({
      action: 'control.kill',
      source: 'svc_agentserver',
    });
  });
  it('turns the client form into the service input', () => {
    const service = clientInput(
      readClientForm({
        name: 'Svc',
        type: 'service',
        auth: 'client_secret_basic',
        roles: ['operator', 'viewer'],
        permissions: 'agent:x:inject',
        cidrs: '10.0.0.0/8, 192.168.0.0/16',
      }),
    );
    expect(service).toMatchObject({
      name: 'Svc',
      grants: ['client_credentials'],
      roles: ['operator', 'viewer'],
      permissions: ['agent:x:inject'],
      allowedCidrs: ['10.0.0.0/8', '192.168.0.0/16'],
    });
    const browser = clientInput(
      readClientForm({ name: 'App', type: 'browser', auth: 'none', redirect_uris: 'https://a.example/cb', refresh: '1', roles: 'owner' }),
    );
    expect(browser).toMatchObject({
      grants: ['authorization_code', 'refresh_token'],
      auth: 'none',
      redirectUris: ['https://a.example/cb'],
    });
    expect(() => clientInput(readClientForm({ name: 'K', type: 'service', auth: 'private_key_jwt', jwks: '{not json' }))).toThrow(
      /jwks: is not valid JSON/,
    );
  });
});

describe('user search', () => {
  const u = (email: string, role: string, status: 'active' | 'disabled') => ({ email, role, status }) as unknown as AccountListItem;
  const users = [
    u('ada@example.com', 'owner', 'active'),
    u('bob@example.com', 'operator', 'disabled'),
    u('adam@corp.example', 'operator', 'active'),
  ];
  it('matches part of the email in any case, the role and the status', () => {
    expect(searchUsers(users, parseUserSearch({ q: 'ADA' })).map((x) => x.email)).toEqual(['ada@example.com', 'adam@corp.example']);
    expect(searchUsers(users, parseUserSearch({ role: 'operator', status: 'active' })).map((x) => x.email)).toEqual(['adam@corp.example']);
    expect(searchUsers(users, parseUserSearch({ role: 'emperor', status: 'sleeping' }))).toHaveLength(3);
  });
});
