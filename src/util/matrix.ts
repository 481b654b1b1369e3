/** A feature matrix: N rows of D values, or one flat row-major buffer with its shape (N×D). */
export type FeatureMatrix = readonly ArrayLike<number>[] | { data: ArrayLike<number>; rows: number; cols: number };
