import { useEffect, useRef } from "preact/hooks";
import type uPlot from "uplot";

const tick = (v: number): string => (v === 0 || Math.abs(v) >= 1 ? String(+v.toFixed(2)) : v.toPrecision(2));

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

/** A uPlot line chart over time (seconds since the epoch), as wide as its box; redrawn when data changes. */
export function TimeChart(props: { title: string; times: number[]; series: Series[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(el.clientWidth, 240);
    let plot: uPlot | undefined;
    let resize: ResizeObserver | undefined;
    let gone = false;
    // Loaded with the first chart: the overview's first load does without uPlot's code.
    void import("uplot").then(({ default: UPlot }) => {
      if (gone) return;
      plot = new UPlot(
        {
          width: width(),
          height: 220,
          series: [
            {},
            ...props.series.map((s) => ({
              label: s.label,
              stroke: s.color,
              width: 2,
              points: { show: true },
            })),
          ],
          // Small values (watt-hours of a few answers) keep two significant digits instead of rounding to 0.
          axes: [{}, { size: 76, values: (_u, splits) => splits.map(tick) }],
          scales: { x: { time: true } },
        },
        [props.times, ...props.series.map((s) => s.values)],
        el,
      );
      const drawn = plot;
      resize = new ResizeObserver(() => drawn.setSize({ width: width(), height: 220 }));
      resize.observe(el);
    });
    return () => {
      gone = true;
      resize?.disconnect();
      plot?.destroy();
    };
  }, [props.times, props.series]);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div
        ref={box}
        role="img"
        aria-label={`${props.title}: ${props.series.map((s) => s.label).join(", ")} over time`}
      />
    </figure>
  );
}
