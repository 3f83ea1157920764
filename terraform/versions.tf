terraform {
  # `terraform test` with mock_provider needs 1.7 or newer.
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Exact pin: the version CI finds in its local plugin folder (terraform/test.sh).
      version = "5.100.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "embbench", ManagedBy = "terraform" }, var.tags)
  }
}
