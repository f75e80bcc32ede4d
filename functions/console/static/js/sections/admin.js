// Administration: the audit trail, users and platform operations.

import { auditDetail, auditList } from '../pages/audit.js';
import { userDetail, userList, userNew } from '../pages/users.js';
import { operations } from '../pages/ops.js';
import { databasePage } from '../pages/database.js';

export default {
  title: 'Admin',
  order: 90,
  menu: [
    ['/audit', 'Audit', ['manager']],
    ['/users', 'Users', ['admin']],
    ['/ops', 'Operations', ['admin']],
    ['/ops/database', 'Database', ['admin']],
  ],
  routes: [
    ['/audit', auditList],
    ['/audit/:id', auditDetail],
    ['/users', userList],
    ['/users/new', userNew],
    ['/users/:id', userDetail],
    ['/ops', operations],
    ['/ops/database', databasePage],
  ],
};
