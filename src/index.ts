export * from './mime/index.js';
