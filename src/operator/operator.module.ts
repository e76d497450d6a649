import { adminPaymentsRoutes } from '../http/routes/admin-payments.route.js';
import type { Module } from '../modules.js';

export const operatorModule: Module = {
  name: 'operator',
  routes: (app, deps) => adminPaymentsRoutes(app, deps),
};
