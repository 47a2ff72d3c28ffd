import type { Duplex } from "node:stream";
import { ChannelLineReader, type Logger } from "@beta9/http";
import { CHANNEL_MAX_LINE, type ChannelSwitch } from "@beta9/protocol";
import { type HeartbeatContext, Heartbeats } from "./heartbeat-stream.ts";

const SWITCH_H2 = `${JSON.stringify({ switch: "h2" } satisfies ChannelSwitch)}\n`;

/**
 * The agent's end of the channel's idle form (protocol 2, protocol/channel.ts): heartbeat lines out,
 * ack lines in, no HTTP/2 session held while the gateway has nothing to ask. On the gateway's
 * `{"switch":"h2"}` we answer the same line and serve HTTP/2 from the gateway's first byte after it
 * (our HTTP/2 server speaks first otherwise, and its SETTINGS must not ride behind our last line).
 */
export function serveIdleChannel(
  socket: Duplex,
  deps: { heartbeats: HeartbeatContext; serve: (socket: Duplex) => void; log: Logger },
): void {
  const lines = new ChannelLineReader(CHANNEL_MAX_LINE);
  const beats = new Heartbeats(deps.heartbeats, (line) => socket.write(line));
  let switched = false;

  const serve = (first: Buffer) => {
    socket.off("data", onData);
    socket.pause();
    if (first.length > 0) socket.unshift(first);
    deps.serve(socket);
  };
  const onData = (chunk: Buffer) => {
    if (switched) {
      serve(chunk);
      return;
    }
    let to: ChannelSwitch["switch"] | undefined;
    try {
      lines.push(chunk, (line) => {
        to = beats.onLine(line);
        return to === undefined;
      });
    } catch {
      deps.log.warn("gateway sent a line too long on the agent channel; reconnecting");
      socket.destroy();
      return;
    }
    if (to === undefined) return;
    if (to !== "h2") {
      deps.log.warn("gateway asked for an idle channel on one that is idle; reconnecting");
      socket.destroy();
      return;
    }
    switched = true;
    beats.stop();
    socket.write(SWITCH_H2);
    const rest = lines.rest();
    if (rest.length > 0) serve(rest);
  };
  socket.on("data", onData);
  socket.once("close", () => beats.stop());
  void beats.start();
}
