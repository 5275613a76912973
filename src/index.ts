export * from './mime/index.js';
export * from './defang/index.js';
export * from './dsn/index.js';
export * from './cbv/index.js';
export * from './milter/index.js';
export * from './daemon/index.js';
