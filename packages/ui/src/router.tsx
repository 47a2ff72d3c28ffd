import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

/** The dashboard's paths all start here; the gateway answers index.html for any of them. */
export const BASE = "/ui";

const listeners = new Set<() => void>();
addEventListener("popstate", () => {
  for (const l of listeners) l();
});

/** Go to a dashboard path ("/machines/m1") without reloading the page. */
export function navigate(path: string, replace = false): void {
  const url = path.startsWith(BASE) ? path : BASE + path;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  scrollTo(0, 0);
  for (const l of listeners) l();
}

/** The current path below /ui ("/" for the overview) and the query, re-rendered on navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = () => setTick((t) => t + 1);
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || "/" : "/";
  return { path: path.replace(/\/+$/, "") || "/", query: new URLSearchParams(location.search) };
}

/** An ordinary link (open in a new tab works) that navigates in place on a plain click. */
export function Link(props: {
  href: string;
  children: ComponentChildren;
  class?: string;
  "aria-current"?: "page" | undefined;
}) {
  const { href, children, ...rest } = props;
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a {...rest} href={BASE + href} onClick={onClick}>
      {children}
    </a>
  );
}
