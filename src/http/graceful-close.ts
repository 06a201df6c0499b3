// Closing the listening socket without failing a request (docs/architecture.md, "Shutdown"). By
// the time it runs, the drain period has let load balancers stop sending new requests; what is
// left are requests in flight and idle keep-alive connections. Node's server.close() stops
// accepting and drops idle connections, but keeps a busy keep-alive connection open after its
// response until the keep-alive timeout, and a client may send its next request on it meanwhile.
// So every response written from now on says `Connection: close` (RFC 9112 section 9.6), and a
// connection is closed as soon as its response is finished.
import type http from 'node:http';
import type https from 'node:https';
import type { Socket } from 'node:net';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export class GracefulClose {
  #closing = false;
  #sockets = new Set<Socket>();
  #inFlight = new Set<http.ServerResponse>();

  /** The request handler to give the server: it knows which responses are in flight. */
  wrap(handler: Handler): Handler {
    return (req, res) => {
      this.#inFlight.add(res);
      res.once('close', () => this.#inFlight.delete(res));
      if (this.#closing) this.#lastOnConnection(res);
      handler(req, res);
    };
  }

  attach(server: http.Server | https.Server): void {
    server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  /** Stop accepting, let requests in flight finish, then close; sockets still open after `forceAfterMs` are cut. */
  async close(server: http.Server | https.Server, forceAfterMs: number): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    for (const res of this.#inFlight) this.#lastOnConnection(res);
    const forced = setTimeout(() => this.#sockets.forEach((s) => s.destroy()), forceAfterMs);
    await closed;
    clearTimeout(forced);
  }

  #lastOnConnection(res: http.ServerResponse): void {
    // Node closes the connection after a response that carries `Connection: close`.
    if (!res.headersSent) res.setHeader('connection', 'close');
    else res.once('finish', () => res.socket?.end());
  }
}
