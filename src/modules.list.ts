import { intakeModule } from './intake/intake.module.js';
import type { Module } from './modules.js';
import { operatorModule } from './operator/operator.module.js';
import { ordersModule } from './orders/orders.module.js';
import { telegramModule } from './telegram/telegram.module.js';

// Every feature module the service runs, in start order (a module may use what an earlier one shared).
export const allModules: Module[] = [intakeModule, operatorModule, ordersModule, telegramModule];
