# The Prefect server on ECS with its database on RDS PostgreSQL: what many releases at once
# need (SQLite serialises every write). One server task: Prefect runs several replicas only
# with Redis as their message broker, so the service stays at one and is replaced on failure.

data "aws_region" "this" {}

locals {
  port     = 4200
  api_url  = "https://${var.host_name}/api"
  ui_url   = "https://${var.host_name}"
  database = "prefect"
}

resource "aws_security_group" "server" {
  name        = "${var.name}-prefect-server"
  description = "Prefect server task: reached from the ALB, reaches its database"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_security_group" "database" {
  name        = "${var.name}-prefect-db"
  description = "Prefect's PostgreSQL: reached from the server task only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "server_from_alb" {
  security_group_id            = aws_security_group.server.id
  referenced_security_group_id = var.alb_security_group_id
  description                  = "UI and API requests and health checks from the internal ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "alb_to_server" {
  security_group_id            = var.alb_security_group_id
  referenced_security_group_id = aws_security_group.server.id
  description                  = "forward to the Prefect server"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "server_to_database" {
  security_group_id            = aws_security_group.server.id
  referenced_security_group_id = aws_security_group.database.id
  description                  = "the server's database connections"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "server_https" {
  security_group_id = aws_security_group.server.id
  cidr_ipv4         = "0.0.0.0/0"
  description       = "HTTPS to ECR, Secrets Manager and CloudWatch Logs (through NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "server_to_home" {
  security_group_id            = aws_security_group.server.id
  referenced_security_group_id = aws_security_group.home.id
  description                  = "NFS to the server's home on EFS"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  tags                         = var.tags
}

# The server's home (PREFECT_HOME) on EFS. Prefect keeps concurrency leases (a release's hold
# on its promotion and load-test slots) in server memory by default: a replaced or restarted
# server task lost them, a release's next renewal got 410 and its slot stayed taken for good.
# With the filesystem lease storage on EFS they outlive the task, as the embedded server's
# leases outlive it on its disk.
resource "aws_security_group" "home" {
  name        = "${var.name}-prefect-home"
  description = "EFS mount targets of the Prefect server's home: reached from the server task only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "home_from_server" {
  security_group_id            = aws_security_group.home.id
  referenced_security_group_id = aws_security_group.server.id
  description                  = "NFS from the Prefect server"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  tags                         = var.tags
}

resource "aws_efs_file_system" "home" {
  #checkov:skip=CKV2_AWS_18: leases and the UI's build, remade by the server; nothing to back up
  creation_token = "${var.name}-prefect-home"
  encrypted      = true
  kms_key_id     = var.kms_key_arn
  tags           = merge(var.tags, { Name = "${var.name}-prefect-home" })
}

resource "aws_efs_mount_target" "home" {
  count           = length(var.subnet_ids)
  file_system_id  = aws_efs_file_system.home.id
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.home.id]
}

resource "aws_efs_access_point" "home" {
  file_system_id = aws_efs_file_system.home.id
  posix_user {
    uid = 10001
    gid = 10001
  }
  root_directory {
    path = "/prefect-home"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0700"
    }
  }
  tags = var.tags
}

data "aws_iam_policy_document" "home" {
  statement {
    sid     = "TLSOnly"
    effect  = "Deny"
    actions = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    resources = [aws_efs_file_system.home.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_efs_file_system_policy" "home" {
  file_system_id = aws_efs_file_system.home.id
  policy         = data.aws_iam_policy_document.home.json
}

resource "aws_vpc_security_group_ingress_rule" "database_from_server" {
  security_group_id            = aws_security_group.database.id
  referenced_security_group_id = aws_security_group.server.id
  description                  = "PostgreSQL from the Prefect server"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  tags                         = var.tags
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-prefect"
  description = "Private subnets of Prefect's database"
  subnet_ids  = var.subnet_ids
  tags        = var.tags
}

resource "aws_db_parameter_group" "this" {
  name        = "${var.name}-prefect-pg${var.db_engine_version}"
  family      = "postgres${var.db_engine_version}"
  description = "Prefect's PostgreSQL: TLS only, schema changes and slow queries logged"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  tags = var.tags
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-prefect-db-monitoring"
  description        = "RDS Enhanced Monitoring of Prefect's database"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  identifier                            = "${var.name}-prefect"
  engine                                = "postgres"
  engine_version                        = var.db_engine_version
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage_gb
  max_allocated_storage                 = var.db_max_storage_gb
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = var.kms_key_arn
  db_name                               = local.database
  username                              = "prefect"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = var.kms_key_arn
  iam_database_authentication_enabled   = true
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.database.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  multi_az                              = true
  backup_retention_period               = var.db_backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-prefect-final"
  auto_minor_version_upgrade            = true
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  tags                                  = var.tags
}

data "aws_iam_policy_document" "read_secrets" {
  statement {
    sid       = "ServerSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_db_instance.this.master_user_secret[0].secret_arn, var.prefect_auth_secret_arn]
  }
  statement {
    sid       = "DecryptDatabaseSecret"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "read_secrets" {
  name   = "${var.name}-prefect-server-secrets"
  role   = var.execution_role_name
  policy = data.aws_iam_policy_document.read_secrets.json
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name}-prefect-server"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.server_cpu)
  memory                   = tostring(var.server_memory)
  execution_role_arn       = var.execution_role_arn
  # The server calls no AWS API: no task role. Its home is on EFS, through the access point
  # (one POSIX user, its own folder), over TLS.
  volume {
    name = "prefect-home"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.home.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.home.id
        iam             = "DISABLED"
      }
    }
  }
  container_definitions = jsonencode([{
    name                   = "server"
    image                  = var.server_image
    essential              = true
    readonlyRootFilesystem = true
    command                = ["prefect", "server", "start", "--host", "0.0.0.0", "--port", tostring(local.port)]
    portMappings           = [{ containerPort = local.port, protocol = "tcp" }]
    mountPoints            = [{ sourceVolume = "prefect-home", containerPath = "/var/lib/prefect" }]
    environment = [
      # Prefect puts the password into the URL itself; TLS is required by the database.
      { name = "PREFECT_SERVER_DATABASE_CONNECTION_URL", value = "postgresql+asyncpg://prefect:$${PREFECT_SERVER_DATABASE_PASSWORD}@${aws_db_instance.this.endpoint}/${local.database}?ssl=require" },
      { name = "PREFECT_HOME", value = "/var/lib/prefect" },
      { name = "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", value = "prefect.server.concurrency.lease_storage.filesystem" },
      { name = "PREFECT_UI_API_URL", value = local.api_url },
      { name = "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS", value = local.ui_url },
      { name = "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", value = "true" },
      { name = "PREFECT_SERVER_ANALYTICS_ENABLED", value = "false" },
    ]
    secrets = [
      { name = "PREFECT_SERVER_DATABASE_PASSWORD", valueFrom = "${aws_db_instance.this.master_user_secret[0].secret_arn}:password::" },
      { name = "PREFECT_SERVER_API_AUTH_STRING", valueFrom = var.prefect_auth_secret_arn },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = var.log_group_name
        "awslogs-region"        = data.aws_region.this.name
        "awslogs-stream-prefix" = "server"
      }
    }
  }])
  tags = var.tags
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378: TLS ends at the internal ALB's HTTPS listener; ALB to task is HTTP inside the VPC, limited by security groups to port 4200
  name        = substr("${var.name}-prefect", 0, 32)
  port        = local.port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check {
    path                = "/api/health"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  tags = var.tags
}

resource "aws_lb_listener_rule" "this" {
  listener_arn = var.listener_arn
  priority     = var.listener_priority
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
  condition {
    host_header {
      values = [var.host_name]
    }
  }
  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                   = "${var.name}-prefect-server"
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.this.arn
  desired_count          = 1
  launch_type            = "FARGATE"
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  # Migrations run when the server starts: give it time before the ALB's checks count.
  health_check_grace_period_seconds = 120
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.server.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "server"
    container_port   = local.port
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  depends_on = [aws_iam_role_policy.read_secrets, aws_lb_listener_rule.this, aws_efs_mount_target.home]
  tags       = var.tags
}
