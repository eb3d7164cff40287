// Learning-rate schedule for the backbone: linear warm-up to the peak, then linear or cosine
// decay to `minRatio * peak` at `totalSteps` (and held there after).

export interface LrSchedule {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  decay?: 'linear' | 'cosine' | 'constant';
  /** Final learning rate as a fraction of the peak. Default 0. */
  minRatio?: number;
}

export function validateSchedule(s: LrSchedule): void {
  if (!(Number.isFinite(s.peak) && s.peak >= 0)) throw new RangeError(`schedule: peak must be a finite number >= 0, got ${s.peak}`);
  if (!Number.isInteger(s.warmupSteps) || s.warmupSteps < 0) throw new RangeError(`schedule: warmupSteps must be an integer >= 0, got ${s.warmupSteps}`);
  if (!Number.isInteger(s.totalSteps) || s.totalSteps < 1) throw new RangeError(`schedule: totalSteps must be an integer >= 1, got ${s.totalSteps}`);
  if (s.warmupSteps > s.totalSteps) throw new RangeError(`schedule: warmupSteps (${s.warmupSteps}) exceeds totalSteps (${s.totalSteps})`);
  const m = s.minRatio ?? 0;
  if (!(m >= 0 && m <= 1)) throw new RangeError(`schedule: minRatio must be in [0, 1], got ${m}`);
}

/** Learning rate for update number `step` (0-based: the first update is step 0). */
export function learningRate(s: LrSchedule, step: number): number {
  validateSchedule(s);
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`schedule: step must be an integer >= 0, got ${step}`);
  if (step < s.warmupSteps) return (s.peak * (step + 1)) / s.warmupSteps;
  const decay = s.decay ?? 'linear';
  if (decay === 'constant') return s.peak;
  const min = s.peak * (s.minRatio ?? 0);
  const span = s.totalSteps - s.warmupSteps;
  if (span <= 0) return s.peak;
  const p = Math.min(1, (step - s.warmupSteps) / span);
  if (decay === 'linear') return s.peak - (s.peak - min) * p;
  return min + ((s.peak - min) * (1 + Math.cos(Math.PI * p))) / 2;
}
