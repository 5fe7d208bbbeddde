provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

locals {
  tags = {
    project    = "fearless"
    owner      = var.owner
    managed-by = "terraform"
  }
  prefect_api_url = var.prefect_server_host_name == "" ? var.prefect_api_url : module.prefect_server[0].api_url
}

module "registry" {
  source            = "../../modules/registry"
  name              = var.name
  access_log_bucket = var.log_bucket
  tags              = local.tags
}

module "network" {
  source                = "../../modules/network"
  name                  = var.name
  vpc_id                = var.vpc_id
  vpc_cidr              = var.vpc_cidr
  private_subnet_ids    = var.private_subnet_ids
  certificate_arn       = var.certificate_arn
  alb_access_log_bucket = var.log_bucket
  tags                  = local.tags
}

module "ecs" {
  source           = "../../modules/ecs"
  name             = var.name
  kms_key_arn      = module.registry.kms_key_arn
  repository_arn   = module.registry.repository_arn
  bucket_arn       = module.registry.bucket_arn
  inference_prefix = var.inference_prefix
  tags             = local.tags
}

# With prefect_server_host_name set, the Prefect server runs here too (ECS, RDS PostgreSQL);
# otherwise the worker uses the self-hosted server at prefect_api_url.
module "prefect_server" {
  source                  = "../../modules/prefect_server"
  count                   = var.prefect_server_host_name == "" ? 0 : 1
  name                    = var.name
  vpc_id                  = var.vpc_id
  subnet_ids              = var.private_subnet_ids
  cluster_arn             = module.ecs.cluster_arn
  host_name               = var.prefect_server_host_name
  listener_arn            = module.network.https_listener_arn
  alb_security_group_id   = module.network.alb_security_group_id
  execution_role_arn      = module.ecs.execution_role_arn
  execution_role_name     = module.ecs.execution_role_name
  log_group_name          = module.ecs.log_group_names["server"]
  kms_key_arn             = module.registry.kms_key_arn
  prefect_auth_secret_arn = var.prefect_auth_secret_arn
  tags                    = local.tags
}

check "prefect_api" {
  assert {
    condition     = local.prefect_api_url != ""
    error_message = "Set prefect_server_host_name (run the server here) or prefect_api_url (use yours)."
  }
}

# The load generator's tasks (Locust master and workers) run the flow image.
module "load_generator" {
  source             = "../../modules/load_generator"
  name               = var.name
  image              = var.flow_image
  execution_role_arn = module.ecs.execution_role_arn
  log_group_name     = module.ecs.log_group_names["loadgen"]
  bucket_arn         = module.registry.bucket_arn
  kms_key_arn        = module.registry.kms_key_arn
  tags               = local.tags
}

module "prefect_worker" {
  source                  = "../../modules/prefect_worker"
  name                    = var.name
  cluster_arn             = module.ecs.cluster_arn
  cluster_name            = module.ecs.cluster_name
  prefect_api_url         = local.prefect_api_url
  prefect_auth_secret_arn = var.prefect_auth_secret_arn
  subnet_ids              = var.private_subnet_ids
  security_group_id       = module.network.worker_security_group_id
  execution_role_arn      = module.ecs.execution_role_arn
  execution_role_name     = module.ecs.execution_role_name
  task_role_arn           = module.ecs.task_role_arn
  loadgen_task_role_arn   = module.load_generator.task_role_arn
  log_group_name          = module.ecs.log_group_names["worker"]
  bucket_arn              = module.registry.bucket_arn
  repository_arn          = module.registry.repository_arn
  namespace_arn           = module.network.namespace_arn
  kms_key_arn             = module.registry.kms_key_arn
  tags                    = local.tags
}

module "production_service" {
  source             = "../../modules/production_service"
  for_each           = var.production_models
  model              = each.key
  host_name          = each.value.host_name
  listener_priority  = each.value.listener_priority
  image              = each.value.image
  cluster_arn        = module.ecs.cluster_arn
  cluster_name       = module.ecs.cluster_name
  vpc_id             = var.vpc_id
  subnet_ids         = var.private_subnet_ids
  security_group_ids = [module.network.environments_security_group_id]
  listener_arn       = module.network.https_listener_arn
  execution_role_arn = module.ecs.execution_role_arn
  task_role_arn      = module.ecs.task_role_arn
  log_group_name     = module.ecs.log_group_names["production"]
  inference_log_s3   = "s3://${module.registry.bucket_name}/${var.inference_prefix}/production"
  min_tasks          = var.production_min_tasks
  max_tasks          = var.production_max_tasks
  target_cpu_percent = var.production_target_cpu_percent
  tags               = local.tags
}
