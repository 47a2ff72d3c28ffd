"""Clients that ask for streamed answers and then stop reading them.

Usage: stalled_readers.py HOST PORT API_KEY BODY_JSON COUNT

Each opens a socket with a small receive buffer (so the gateway's writes back up soon), sends the
request, reads the answer's headers, then reads nothing more. Prints one line per client with its
status line, then "ready", then holds the sockets until stdin closes.
"""

import socket
import sys


def main() -> None:
    host, port, key, body, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), int(sys.argv[5])
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the window the gateway sees is small from the start.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.connect((host, port))
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\n"
            + f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n".encode()
            + b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        held.append(s)
    for s in held:
        head = b""
        while b"\r\n" not in head:
            more = s.recv(1)
            if not more:
                break
            head += more
        print(head.decode().strip(), flush=True)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
