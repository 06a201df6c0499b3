// A client's token-request budget. 600 a minute is ten a second: far beyond a service that
// refreshes a 15-minute token, low enough that one leaked secret cannot make Gatehouse sign
// without bound (agentserver SECURITY.md: "API keys with IP allowlisting + rate limits").
export const DEFAULT_CLIENT_TOKEN_REQUESTS_PER_MINUTE = 600;
export const MAX_CLIENT_TOKEN_REQUESTS_PER_MINUTE = 1_000_000;
