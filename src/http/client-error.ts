// What Node's HTTP parser refuses before any handler runs (a request line or headers over 16 KiB,
// bytes that are not HTTP, a body sent without a length): Node's default answer is a bare status
// with no body. Gatehouse answers like every other refusal: the right status and a JSON error that
// says what was wrong (issue 8: every bad input gets a precise 4xx), then closes the connection,
// because the parser cannot tell where the next request would begin.
import http from 'node:http';
import type { Duplex } from 'node:stream';

function refusal(code: string | undefined): [number, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'request line or header fields too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'the request was not received in time'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
    case 'HPE_INVALID_CHUNK_SIZE':
      return [400, 'malformed chunked request body'];
    default:
      return [400, 'malformed HTTP request'];
  }
}

export function answerMalformedRequests(server: http.Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A peer that went away, or a socket that can no longer be written: nothing to answer.
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, message] = refusal(err.code);
    // A HEAD request's answer has no body (RFC 9110 section 9.3.2), refusal or not.
    const raw = (err as { rawPacket?: unknown }).rawPacket;
    const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
    const json = JSON.stringify({ error: 'invalid_request', error_description: message });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(json)}\r\n` +
        'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
        (head ? '' : json),
    );
  });
}
