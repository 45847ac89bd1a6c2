// The live loss chart (Chart.js, only the parts a line chart needs).
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  type ScatterDataPoint,
  Tooltip,
} from 'chart.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, Tooltip, Legend);

/** Exponential moving average weight of the smoothed curve. */
const SMOOTHING = 0.8;

export class LossChart {
  readonly #chart: Chart<'line', ScatterDataPoint[]>;
  #ema: number | null = null;
  /** The pending redraw's animation frame, if one is requested. */
  #frame: number | null = null;

  constructor(canvas: HTMLCanvasElement) {
    this.#chart = new Chart(canvas, {
      type: 'line',
      data: {
        datasets: [
          {
            label: 'loss',
            data: [],
            borderColor: 'rgba(37, 99, 235, 0.45)',
            backgroundColor: 'rgba(37, 99, 235, 0.45)',
            pointRadius: 1.5,
            borderWidth: 1,
          },
          {
            label: 'smoothed',
            data: [],
            borderColor: 'rgb(220, 38, 38)',
            backgroundColor: 'rgb(220, 38, 38)',
            pointRadius: 0,
            borderWidth: 2,
          },
        ],
      },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        maintainAspectRatio: false,
        scales: {
          x: { type: 'linear', title: { display: true, text: 'step' }, ticks: { precision: 0 } },
          y: { type: 'linear', title: { display: true, text: 'training loss' } },
        },
        plugins: { legend: { position: 'bottom' } },
      },
    });
  }

  /**
   * Adds a step's loss; the chart redraws on the next animation frame, once for however many steps
   * came since. A redraw costs the whole curve: once a step, a small model's fast steps (50 a second
   * and more) kept the page's thread busy enough that its Stop button stopped answering.
   */
  add(step: number, loss: number): void {
    this.#ema = this.#ema === null ? loss : SMOOTHING * this.#ema + (1 - SMOOTHING) * loss;
    this.#chart.data.datasets[0]!.data.push({ x: step, y: loss });
    this.#chart.data.datasets[1]!.data.push({ x: step, y: this.#ema });
    if (this.#frame === null) {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = null;
        this.#chart.update('none');
      });
    }
  }

  clear(): void {
    if (this.#frame !== null) cancelAnimationFrame(this.#frame);
    this.#frame = null;
    this.#ema = null;
    for (const dataset of this.#chart.data.datasets) dataset.data = [];
    this.#chart.update('none');
  }
}
