// The account behind a token is read once per request (findAccount and the token's claims share
// it), never kept across requests: a disabled person is refused by the next one.
import { afterEach, describe, expect, it } from 'vitest';
import { createAccount, disableAccount } from '../../src/accounts/accounts.service.ts';
import { accountTokenClaimsHook, findAccountHook } from '../../src/oidc/account-hooks.ts';
import { freshDb, type TestDb } from '../helpers/db.ts';

describe('account hooks', () => {
  let t: TestDb | undefined;
  afterEach(async () => t?.drop());

  it('share one read of the account within a request, and read it again in the next', async () => {
    t = await freshDb('pglite');
    const db = t.db.kysely;
    const account = await createAccount(db, { email: 'ada@example.com', role: 'operator', permissions: [], passwordHash: 'x' });
    let reads = 0;
    const counted = new Proxy(db, {
      get(target, prop) {
        if (prop === 'selectFrom') reads++;
        const value = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const findAccount = findAccountHook(counted);
    const claims = accountTokenClaimsHook(counted);
    const request = { oidc: { entities: {} } } as any;
    expect((await findAccount(request, account.id))?.accountId).toBe(account.id);
    expect(await claims(request, account.id)).toMatchObject({ roles: ['operator'] });
    expect(reads).toBe(1);

    await disableAccount(db, account.id);
    const next = { oidc: { entities: {} } } as any;
    expect(await findAccount(next, account.id)).toBeUndefined();
    expect(await claims(next, account.id)).toMatchObject({ roles: [], permissions: [] });
    expect(reads).toBe(2);
  });
});
